"""Who sends an SMS: one interface, the local sink (embedded default) and the two services Chinese companies use.

``SmsProvider.send(phone, text, signature, *, message_type, reference) -> provider message id``. ``text`` is the
body without the signature; the services put ``【signature】`` in front themselves (the signature must be the one
registered with them). ``reference`` is the outbox row's fixed message id, passed on as the services' own
reference (Aliyun ``OutId``, Tencent ``SessionContext``) and the sink's key, so the sink stores a resent SMS once.
Every failure is an :class:`SmsSendError`, ``retryable`` or not (the outbox retries with backoff or dead-letters).

Alibaba Cloud SMS (dysmsapi 2017-05-25) and Tencent Cloud SMS (2021-01-11) are reached through their official
SDKs. Both send only templates approved in their consoles: ``KEFU_SMS_TEMPLATES`` maps each message type to a
template whose one variable carries the text (Aliyun ``${content}``, Tencent ``{1}``).

Configuration (environment, see ``kefu.settings``): ``KEFU_SMS_PROVIDER=sink|aliyun|tencent``;
aliyun: ``KEFU_SMS_ALIYUN_ACCESS_KEY_ID``, ``KEFU_SMS_ALIYUN_ACCESS_KEY_SECRET`` (``KEFU_SMS_ALIYUN_ENDPOINT``);
tencent: ``KEFU_SMS_TENCENT_SECRET_ID``, ``KEFU_SMS_TENCENT_SECRET_KEY``, ``KEFU_SMS_TENCENT_SDK_APP_ID``
(``KEFU_SMS_TENCENT_REGION``, ``KEFU_SMS_TENCENT_ENDPOINT``); both: ``KEFU_SMS_TEMPLATES``, ``KEFU_SMS_SIGNATURE``.
An endpoint is the provider's host (HTTPS) or a forwarding gateway's URL. ``check_sms_settings`` names
every missing or malformed value; ``kefu up`` refuses to start with one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kefu.notifications.messages import MessageType
from kefu.settings import Settings


class SmsSendError(Exception):
    """The provider did not take the SMS: ``retryable`` (try again later) or permanent (a dead letter)."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class SmsConfigError(ValueError):
    """The SMS settings are incomplete or malformed; the message names every problem and its variable."""


class SmsProvider(Protocol):
    name: str

    def send(self, phone: str, text: str, signature: str, *, message_type: str, reference: str) -> str:
        """Hand one SMS to the provider; returns the provider's message id or raises :class:`SmsSendError`."""
        ...


# ---- the local sink -------------------------------------------------------------------------------------------


def sms_dir(settings: Settings) -> Path:
    return settings.var_dir / "sms"


@dataclass(frozen=True)
class StoredSms:
    reference: str
    phone: str
    text: str  # 【signature】body, as the phone shows it
    message_type: str
    received_at: str


class SinkProvider:
    """The embedded default: every SMS is a JSON file under ``var/sms/``, one per reference (stored once)."""

    name = "sink"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, phone: str, text: str, signature: str, *, message_type: str, reference: str) -> str:
        name = hashlib.sha256(reference.encode()).hexdigest()[:32]
        target = self.directory / f"{name}.json"
        if not target.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            record = {
                "reference": reference,
                "phone": phone,
                "text": f"【{signature}】{text}",
                "message_type": message_type,
                "received_at": dt.datetime.now(dt.UTC).isoformat(),
            }
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            tmp.replace(target)
        return f"sink-{name}"


def stored_sms(directory: Path, limit: int = 200) -> list[StoredSms]:
    """The newest SMS in the sink, newest first."""
    if not directory.exists():
        return []
    files = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    found = []
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        found.append(
            StoredSms(
                record["reference"], record["phone"], record["text"], record["message_type"], record["received_at"]
            )
        )
    return found


# ---- Alibaba Cloud SMS (dysmsapi) -----------------------------------------------------------------------------

# Codes after which the same SMS may go through later (limits, balance, the service's own faults); any other
# code (a wrong number, signature, template or key) fails again the same way.
ALIYUN_RETRYABLE = frozenset(
    {"isv.BUSINESS_LIMIT_CONTROL", "isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE", "ServiceUnavailable", "InternalError"}
)


def endpoint(value: str) -> tuple[str, str]:
    """A provider endpoint setting as (protocol, host[:port]): a bare host is the provider's own, over HTTPS; a URL
    (``http://sms-gateway.internal:8080``) names a forwarding gateway with its scheme."""
    if "://" not in value:
        return "https", value.strip().rstrip("/")
    scheme, _, rest = value.strip().partition("://")
    return scheme.lower(), rest.split("/", 1)[0]


def aliyun_retryable(code: str | None) -> bool:
    code = code or ""
    return code in ALIYUN_RETRYABLE or code.startswith(("isp.", "Throttling"))


class AliyunProvider:
    name = "aliyun"

    def __init__(self, settings: Settings) -> None:
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi.models import Config

        secret = settings.sms_aliyun_access_key_secret
        self.templates = dict(settings.sms_templates)
        protocol, host = endpoint(settings.sms_aliyun_endpoint)
        self.client = Client(
            Config(
                access_key_id=settings.sms_aliyun_access_key_id,
                access_key_secret=secret.get_secret_value() if secret else None,
                protocol=protocol,
                endpoint=host,
                connect_timeout=int(settings.sms_timeout_seconds * 1000),
                read_timeout=int(settings.sms_timeout_seconds * 1000),
            )
        )

    def send(self, phone: str, text: str, signature: str, *, message_type: str, reference: str) -> str:
        from alibabacloud_dysmsapi20170525.models import SendSmsRequest
        from Tea.exceptions import TeaException, UnretryableException

        request = SendSmsRequest(
            phone_numbers=phone,
            sign_name=signature,
            template_code=_template(self.templates, message_type),
            template_param=json.dumps({"content": text}, ensure_ascii=False),
            out_id=reference,
        )
        try:
            body = self.client.send_sms(request).body
        except UnretryableException as exc:  # the transport gave up (refused, timed out): a fault worth retrying later
            raise SmsSendError(f"{type(exc.inner_exception or exc).__name__}: {exc}", retryable=True) from exc
        except TeaException as exc:
            raise SmsSendError(f"{exc.code} {exc.message}", retryable=aliyun_retryable(exc.code)) from exc
        except Exception as exc:  # the SDK's transport: connection refused, timeouts, TLS
            raise SmsSendError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if body.code != "OK":
            raise SmsSendError(f"{body.code} {body.message}", retryable=aliyun_retryable(body.code))
        return str(body.biz_id)


# ---- Tencent Cloud SMS ----------------------------------------------------------------------------------------

TENCENT_RETRYABLE_PREFIXES = (
    "ClientNetworkError",  # the SDK's own: no connection, a timeout
    "ServerNetworkError",  # the SDK's own: an answer that is not the API's (a gateway's 5xx page)
    "InternalError",
    "RequestLimitExceeded",
    "LimitExceeded",
    "FailedOperation.InsufficientBalanceInSmsPackage",
)


def tencent_retryable(code: str | None) -> bool:
    return (code or "").startswith(TENCENT_RETRYABLE_PREFIXES)


class TencentProvider:
    name = "tencent"

    def __init__(self, settings: Settings) -> None:
        from tencentcloud.common.credential import Credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.sms.v20210111.sms_client import SmsClient

        secret = settings.sms_tencent_secret_key
        self.templates = dict(settings.sms_templates)
        self.app_id = settings.sms_tencent_sdk_app_id
        protocol, host = endpoint(settings.sms_tencent_endpoint)
        timeout = max(1, int(settings.sms_timeout_seconds))
        profile = ClientProfile(httpProfile=HttpProfile(protocol=protocol, endpoint=host, reqTimeout=timeout))
        credential = Credential(settings.sms_tencent_secret_id, secret.get_secret_value() if secret else "")
        self.client: Any = SmsClient(credential, settings.sms_tencent_region, profile)

    def send(self, phone: str, text: str, signature: str, *, message_type: str, reference: str) -> str:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.sms.v20210111.models import SendSmsRequest

        request = SendSmsRequest()
        request.PhoneNumberSet = [f"+86{phone}"]
        request.SmsSdkAppId = self.app_id
        request.SignName = signature
        request.TemplateId = _template(self.templates, message_type)
        request.TemplateParamSet = [text]
        request.SessionContext = reference
        try:
            response = self.client.SendSms(request)
        except TencentCloudSDKException as exc:
            code = exc.get_code()
            raise SmsSendError(f"{code} {exc.get_message()}", retryable=tencent_retryable(code)) from exc
        except Exception as exc:  # the SDK's transport
            raise SmsSendError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        [status] = response.SendStatusSet
        if status.Code != "Ok":
            raise SmsSendError(f"{status.Code} {status.Message}", retryable=tencent_retryable(status.Code))
        return str(status.SerialNo)


def _template(templates: dict[str, str], message_type: str) -> str:
    try:
        return templates[message_type]
    except KeyError:
        raise SmsSendError(f"KEFU_SMS_TEMPLATES has no template for {message_type}", retryable=False) from None


# ---- configuration ---------------------------------------------------------------------------------------------

_REQUIRED = {
    "aliyun": ("sms_aliyun_access_key_id", "sms_aliyun_access_key_secret"),
    "tencent": ("sms_tencent_secret_id", "sms_tencent_secret_key", "sms_tencent_sdk_app_id"),
}


def _env(field: str) -> str:
    return f"KEFU_{field.upper()}"


def check_sms_settings(settings: Settings) -> list[str]:
    """Every problem of the SMS configuration, each naming its environment variable (empty: fine)."""
    provider = settings.sms_provider
    if provider == "sink":
        return []
    problems = [f"{_env(f)} is not set" for f in _REQUIRED[provider] if not getattr(settings, f)]
    known = {t.value for t in MessageType}
    if not settings.sms_templates:
        problems.append(f"{_env('sms_templates')} is not set (JSON: message type → template)")
    elif MessageType.COMPLAINT_ACKNOWLEDGEMENT.value not in settings.sms_templates:
        problems.append(f"{_env('sms_templates')} has no template for complaint_acknowledgement")
    problems += [
        f"{_env('sms_templates')} names an unknown message type {k!r}" for k in settings.sms_templates if k not in known
    ]
    if provider == "tencent":
        if settings.sms_tencent_sdk_app_id and not settings.sms_tencent_sdk_app_id.isdigit():
            problems.append(f"{_env('sms_tencent_sdk_app_id')} must be the SDK AppID's digits")
        problems += [
            f"{_env('sms_templates')}: Tencent template ids are digits, not {v!r}"
            for v in settings.sms_templates.values()
            if not v.isdigit()
        ]
    return problems


def sms_provider(settings: Settings) -> SmsProvider:
    """The configured provider; :class:`SmsConfigError` naming every problem when the configuration is incomplete."""
    problems = check_sms_settings(settings)
    if problems:
        raise SmsConfigError(f"KEFU_SMS_PROVIDER={settings.sms_provider}: " + "; ".join(problems))
    if settings.sms_provider == "aliyun":
        return AliyunProvider(settings)
    if settings.sms_provider == "tencent":
        return TencentProvider(settings)
    return SinkProvider(sms_dir(settings))
