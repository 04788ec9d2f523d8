"""The one configuration object of Kefu (environment variables with the ``KEFU_`` prefix)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFECT_UI_BASE = "/prefect"  # where the operators' entrance serves the Prefect UI

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICY_FILE = PROJECT_ROOT / "policy" / "kefu.yaml"


class Settings(BaseSettings):
    """Where Kefu keeps its data, which policy it follows and how it reaches the world.

    Every field can be set from the environment, e.g. ``KEFU_DATABASE_URL``.
    """

    model_config = SettingsConfigDict(env_prefix="KEFU_", env_file=".env", extra="ignore")

    var_dir: Path = Field(default=Path("var"), description="Local state: embedded PostgreSQL, Prefect home, logs.")
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the system of record (PostgreSQL or sqlite:///...); empty means the database "
        "'kefu' on the embedded PostgreSQL under var_dir/pg, which the first process that needs it starts.",
    )
    policy_file: Path = Field(default=DEFAULT_POLICY_FILE, description="The policy file (YAML).")
    backup_dir: Path | None = Field(
        default=None, description="Where `kefu backup` and the backup flow write; empty means var_dir/backups."
    )

    prefect_api_url: str = Field(default="http://127.0.0.1:4200/api")
    prefect_port: int = 4200
    prefect_database_url: str | None = Field(
        default=None,
        description="The Prefect server's database (e.g. postgresql+asyncpg://user@host/db). Empty: the database "
        "'prefect' on the embedded PostgreSQL under var_dir/pg (the SQLite Prefect server stalls under case load).",
    )
    serve_only: list[str] = Field(
        default_factory=list,
        description="Serve only these deployment names (empty: all). Tests use it to run no schedules.",
    )

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="The Redis of the scaled topology (`kefu up --scaled`): Prefect's messaging, event ordering, "
        "concurrency leases and background tasks, shared by its API processes and its services process.",
    )
    prefect_api_ports: list[int] = Field(
        default_factory=lambda: [4201, 4202],
        min_length=1,
        description="`kefu up --scaled`: one Prefect API process (`prefect server start --no-services`) per port, on "
        "127.0.0.1 behind the balancer on prefect_port.",
    )
    scaled_workers: int = Field(default=2, ge=1, le=16, description="Kefu workers `kefu up --scaled` starts.")

    worker_limit: int = Field(
        default=6,
        ge=1,
        le=64,
        description="Flow runs one Kefu worker executes at once (its threads; the two duties' shifts hold one each).",
    )
    worker_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often a Kefu worker asks its work pool for runs."
    )
    worker_orphan_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A run left Running/Pending by a claimant no Kefu worker of the pool knows is re-run after this "
        "long (a dead worker on this host is recognised at once, one on another host when its heartbeats stop).",
    )
    intake_host: str = "127.0.0.1"
    intake_port: int = 8000
    intake_api_tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Extra bearer tokens the intake API accepts, from the environment or .env only (none is built "
        "in); the usual way is a named token made with `kefu token add`, kept as a hash in the database.",
    )
    intake_trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto intake believes "
        '(JSON list, e.g. ["10.0.0.5"]; "*" trusts any). Empty (default): forwarded headers are ignored and the '
        "client is the connection's peer, so a header cannot dodge the status page's rate limit.",
    )
    intake_allowed_origins: list[str] = Field(
        default_factory=list,
        description="Other origins (e.g. https://www.example.com) whose pages may post to the form and status page; "
        "the intake's own origin is always allowed, every other cross-site form post is refused.",
    )
    intake_api_docs: bool = Field(
        default=True,
        description="Serve the gateway API's documentation at /docs (Swagger UI from the installed package, no CDN) "
        "and its schema at /openapi.json; off hides both.",
    )

    # --- The operators' entrance (kefu/desk): sign-in, sessions, the authenticating proxy to Prefect ---------
    desk_host: str = "127.0.0.1"
    desk_port: int = Field(
        default=8100,
        description="The operators' entrance: staff sign in here and reach the Prefect UI and API through it "
        "(the Prefect server itself listens on loopback only and requires its auth string).",
    )
    desk_public_url: str = Field(
        default="",
        description="The entrance's origin as browsers reach it (e.g. https://kefu.example.com) when a TLS proxy "
        "stands in front; empty: http://DESK_HOST:DESK_PORT. Prefect's CORS allows this origin only.",
    )
    desk_session_hours: float = Field(default=12.0, gt=0, description="A sign-in lasts at most this long.")
    desk_session_idle_minutes: float = Field(
        default=30.0, gt=0, description="A session unused this long ends (the next request asks to sign in again)."
    )
    desk_lockout_failures: int = Field(
        default=5, ge=1, description="Wrong passwords in a row for one sign-in name before it is locked."
    )
    desk_lockout_minutes: float = Field(default=15.0, gt=0, description="How long a locked sign-in name stays locked.")
    desk_cookie_secure: bool = Field(
        default=False, description="Mark the session cookie Secure (set it when the entrance is served over HTTPS)."
    )
    prefect_auth_string: SecretStr | None = Field(
        default=None,
        description="Prefect's API auth string (PREFECT_SERVER_API_AUTH_STRING of the server, sent by every Kefu "
        "process); empty: generated once by `kefu up` into var_dir/prefect-auth (mode 0600).",
    )

    case_page_url: str = Field(
        default="http://127.0.0.1:8100/cases/{case_no}",
        description="Where Kefu's own case page is (the operators' entrance, behind staff sign-in: the customer by "
        "role, milestones, the timeline), '{case_no}' standing for the case number: the summary above each step's "
        "form links to it.",
    )

    # --- The customer's own answers (issue 13): where the links in customer messages lead.
    intake_public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The intake's address as customers reach it (scheme, host, port, no trailing path): the links in "
        "solution proposals (/answer/<token>) start with it.",
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "kefu@example.com"
    mail_sink_enabled: bool = Field(
        default=True,
        description="Embedded default: a local SMTP sink whose mails are shown at /outbox.",
    )
    mail_max_attempts: int = Field(default=8, ge=1, description="Delivery attempts before a dead letter.")
    mail_retry_base_seconds: float = Field(default=30.0, gt=0, description="First retry delay; doubles.")
    mail_retry_max_seconds: float = Field(default=3600.0, gt=0, description="Longest retry delay.")
    mail_batch_size: int = Field(default=200, ge=1, description="Outbox rows sent per delivery pass.")

    sms_provider: Literal["sink", "aliyun", "tencent"] = Field(
        default="sink",
        description="Who sends SMS: the local sink (embedded default, stored under var_dir/sms and shown at "
        "/outbox/sms), Alibaba Cloud SMS (dysmsapi) or Tencent Cloud SMS.",
    )
    sms_signature: str = Field(
        default="物流客服",
        description="The SMS signature (签名) without its brackets: 2-12 characters, as registered with the provider; "
        "messages read 【signature】text.",
    )
    sms_max_parts: int = Field(
        default=3, ge=1, le=10, description="Most parts (70 characters single, 67 per part concatenated) per SMS."
    )
    sms_templates: dict[str, str] = Field(
        default_factory=dict,
        description='Provider template per message type (JSON, e.g. {"complaint_acknowledgement": "SMS_1234"}); '
        "each template has one variable, ${content} (Aliyun) or {1} (Tencent), that carries the text.",
    )
    sms_timeout_seconds: float = Field(default=10.0, gt=0, description="One provider request.")
    sms_aliyun_access_key_id: str | None = None
    sms_aliyun_access_key_secret: SecretStr | None = None
    sms_aliyun_endpoint: str = Field(
        default="dysmsapi.aliyuncs.com",
        description="Aliyun's SMS API host (HTTPS), or a URL with its scheme and port for a forwarding gateway inside "
        "the company's network (http://sms-gateway.internal:8080).",
    )
    sms_tencent_secret_id: str | None = None
    sms_tencent_secret_key: SecretStr | None = None
    sms_tencent_sdk_app_id: str | None = None
    sms_tencent_region: str = "ap-guangzhou"
    sms_tencent_endpoint: str = Field(
        default="sms.tencentcloudapi.com",
        description="Tencent Cloud's SMS API host (HTTPS), or a URL with its scheme and port for a forwarding gateway.",
    )

    @field_validator("sms_signature")
    @classmethod
    def _signature_fits(cls, value: str) -> str:
        value = value.strip()
        if not 2 <= len(value) <= 12:
            raise ValueError(f"短信签名须为2至12个字符（现为{len(value)}个）: {value!r}")
        if any(bracket in value for bracket in "【】[]()（）"):
            raise ValueError(f"短信签名不能包含括号，只写签名本身（发送时自动加【】）: {value!r}")
        return value

    # --- statistics reports (kefu report, the report-weekly / report-monthly flows) ---
    reports_dir: Path | None = Field(
        default=None, description="Where the statistics reports' HTML and XLSX files go; empty means var_dir/reports."
    )

    @property
    def resolved_reports_dir(self) -> Path:
        return (self.reports_dir or self.var_dir / "reports").resolve()

    @property
    def resolved_backup_dir(self) -> Path:
        return (self.backup_dir or self.var_dir / "backups").resolve()

    @property
    def desk_url(self) -> str:
        """The entrance's origin as people open it."""
        if self.desk_public_url:
            return self.desk_public_url.rstrip("/")
        host = "127.0.0.1" if self.desk_host in {"0.0.0.0", "::"} else self.desk_host  # noqa: S104
        return f"http://{host}:{self.desk_port}"

    @property
    def prefect_ui_url(self) -> str:
        """The Prefect UI as people open it: through the entrance (Prefect's "View at" links to runs lead there; the
        server itself asks for its auth string)."""
        return f"{self.desk_url}{PREFECT_UI_BASE}"

    @property
    def prefect_auth_file(self) -> Path:
        return (self.var_dir / "prefect-auth").resolve()

    @property
    def embedded_pg_dir(self) -> Path:
        """Data directory and Unix socket directory of the embedded PostgreSQL server."""
        return (self.var_dir / "pg").resolve()

    def embedded_database_url(self, database: str, driver: str) -> str:
        return f"postgresql+{driver}://postgres@/{database}?host={self.embedded_pg_dir}"

    def resolved_database_url(self) -> str:
        return self.database_url or self.embedded_database_url("kefu", "psycopg")

    def resolved_prefect_database_url(self) -> str:
        return self.prefect_database_url or self.embedded_database_url("prefect", "asyncpg")

    @property
    def uses_embedded_postgres(self) -> bool:
        """True unless both Kefu's and the Prefect server's databases are configured."""
        return not self.database_url or not self.prefect_database_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
