"""Prefect side of notifications: deliver due mails and SMS and show dead letters as an artifact."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from kefu.models.db import default_engine
from kefu.notifications import dead_letters, deliver_due, mask_recipient


@task(task_run_name="deliver due mail", retries=2, retry_delay_seconds=[10, 60])
async def deliver_due_mail() -> dict[str, int]:
    report = await deliver_due(default_engine())
    get_run_logger().info("mail delivery: %s", report.as_dict())
    return report.as_dict()


@task(task_run_name="publish dead letters")
def publish_dead_letters() -> int:
    """A table artifact ``mail-dead-letters`` (ids, type, case id, masked recipient, error): no personal data."""
    letters = dead_letters(default_engine())
    create_table_artifact(
        key="mail-dead-letters",
        table=[
            {
                "id": d.id,
                "type": d.message_type,
                "complaint_id": d.complaint_id,
                "channel": d.channel,
                "recipient": mask_recipient(d.recipient),
                "attempts": d.attempts,
                "error": d.last_error or "",
            }
            for d in letters
        ],
        description=f"死信：{len(letters)} 条消息（邮件或短信）无法投递，请核对收件地址或手机号后重新处理。",
    )
    return len(letters)


@flow(name="deliver-mail")
async def deliver_mail() -> dict[str, int]:
    """Send due mails and SMS, then publish the dead-letter list for operators."""
    result = await deliver_due_mail()
    result["dead_total"] = publish_dead_letters()
    return result
