"""The scheduled backup (seed 004 §6: customer data is backed up regularly): back up Kefu's database, then
delete the backups past the policy's retention. Schedule and retention are the policy file's ``backups``."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task

from kefu.models.db import default_engine
from kefu.models.policy import current_policy
from kefu.settings import get_settings
from kefu.tasks.backup import back_up_and_prune


@task(task_run_name="back up the database", retries=1, retry_delay_seconds=60)
def back_up() -> tuple[str, int, list[str]]:
    """The new file, its size, and the files deleted past retention."""
    policy = current_policy()
    url = default_engine().url.render_as_string(hide_password=False)
    done = back_up_and_prune(
        url, get_settings().resolved_backup_dir, policy.backups, now=dt.datetime.now(dt.UTC), zone=policy.timezone
    )
    return str(done.file), done.file.stat().st_size, [str(p) for p in done.deleted]


@flow(name="backup", log_prints=False)
def backup() -> str:
    logger = get_run_logger()
    file, size, deleted = back_up()
    logger.info("backup written: %s (%d bytes)", file, size)
    for path in deleted:
        logger.info("deleted past retention: %s", path)
    return file
