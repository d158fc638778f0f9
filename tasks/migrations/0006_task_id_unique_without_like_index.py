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

TABLES = ("tasks_job", "tasks_outboxmessage")


def _like_index(schema_editor, table: str) -> str:
    return schema_editor._create_index_name(table, ["task_id"], suffix="_like")


def drop_like_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for table in TABLES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(_like_index(schema_editor, table))}")
        # The constraint is named as the new state names it ({table}_task_id_key, what
        # PostgreSQL calls an inline UNIQUE); rename one that Django named otherwise.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a "
                "ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
                "WHERE c.conrelid = %s::regclass AND c.contype = 'u' "
                "AND a.attname = 'task_id' AND array_length(c.conkey, 1) = 1",
                [table],
            )
            names = [row[0] for row in cursor.fetchall()]
        expected = f"{table}_task_id_key"
        if names and expected not in names:
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(names[0])} "
                f"TO {quote(expected)}"
            )


def create_like_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for table in TABLES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(_like_index(schema_editor, table))} "
            f"ON {quote(table)} (task_id varchar_pattern_ops)"
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
