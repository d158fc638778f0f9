"""Job and OutboxMessage task ids: unique through a constraint, without the LIKE index.

On PostgreSQL Django gives a `unique=True` CharField a second index with
varchar_pattern_ops, for LIKE queries. Nothing here queries task ids with LIKE (the
admin's search is exact, `=task_id`), yet every job row and every outbox message paid
for that index on insert, and on a table of 10 million jobs it is another half a
gigabyte of randomly written pages.

The database keeps the unique constraint it has (so no index is rebuilt on a big
table): in the migration state the field loses `unique=True` and the model gains a
UniqueConstraint of the name PostgreSQL gave the original one; in the database only the
LIKE index goes. SQLite never had one, and its inline UNIQUE stays as it is.
"""

from django.db import migrations, models

# (table, the LIKE index Django created for it in 0001 / 0003). Both tables were created
# with an inline UNIQUE, which PostgreSQL names {table}_task_id_key: the constraint
# names of the new state.
LIKE_INDEXES = (
    ("tasks_job", "tasks_job_task_id_51f26c76_like"),
    ("tasks_outboxmessage", "tasks_outboxmessage_task_id_4a040411_like"),
)


def drop_like_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for _table, index in LIKE_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(index)}")


def create_like_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for table, index in LIKE_INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(index)} ON {quote(table)} "
            "(task_id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0005_sparse_job_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="job",
                    name="task_id",
                    field=models.CharField(max_length=255),
                ),
                migrations.AlterField(
                    model_name="outboxmessage",
                    name="task_id",
                    field=models.CharField(max_length=255),
                ),
                migrations.AddConstraint(
                    model_name="job",
                    constraint=models.UniqueConstraint(
                        fields=("task_id",), name="tasks_job_task_id_key"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="outboxmessage",
                    constraint=models.UniqueConstraint(
                        fields=("task_id",), name="tasks_outboxmessage_task_id_key"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(drop_like_indexes, create_like_indexes),
            ],
        ),
    ]
