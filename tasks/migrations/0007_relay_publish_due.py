"""Job.publish_due_at: the jobs `.delay()` wrote in a transaction, for the relay.

A nullable column without a default is a catalogue change on PostgreSQL (no table
rewrite on a table of millions of rows), and its partial index holds only the jobs not
yet published: empty in a steady state.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0006_task_id_unique_without_like_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="publish_due_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Set while the job waits for the relay to publish it (`.delay()` inside a transaction); a later time is a relay's claim. Cleared once published.",
                null=True,
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("publish_due_at__isnull", False)),
                fields=["publish_due_at"],
                name="job_publish_due",
            ),
        ),
    ]
