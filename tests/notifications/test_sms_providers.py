"""The Aliyun and Tencent adapters send through their official SDKs: the request each SDK makes (number, signature,
template, the text as the template's one variable, our reference) and how each answer is read — sent with the
provider's id, a fault worth retrying, or a permanent refusal (a dead letter). The provider's API is a local HTTP
server answering as the provider documents (``KEFU_SMS_*_ENDPOINT`` pointed at it, as at a forwarding gateway)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kefu.notifications.sms_providers import AliyunProvider, SmsSendError, TencentProvider, endpoint
from kefu.settings import Settings

TEXT = "您的投诉已受理，投诉编号KF20261202-00004。"
SIGNATURE = "物流客服"


@dataclass
class ProviderApi:
    """What the stand-in provider was sent, and the answers it gives, in order."""

    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def provider_api() -> Iterator[ProviderApi]:
    api = ProviderApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            api.requests.append((self.path, dict(self.headers), body))
            status, payload = api.answers.pop(0)
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def test_an_endpoint_is_the_provider_s_host_over_https_or_a_gateway_s_url() -> None:
    assert endpoint("dysmsapi.aliyuncs.com") == ("https", "dysmsapi.aliyuncs.com")
    assert endpoint("http://sms-gateway.internal:8080/") == ("http", "sms-gateway.internal:8080")


def test_aliyun_sends_the_text_in_the_template_and_reads_ok_a_limit_and_a_wrong_number(
    provider_api: ProviderApi,
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        sms_provider="aliyun",
        sms_aliyun_access_key_id="LTAI-test",
        sms_aliyun_access_key_secret="secret",
        sms_aliyun_endpoint=provider_api.url,
        sms_templates={"complaint_acknowledgement": "SMS_1234"},
    )
    provider = AliyunProvider(settings)
    provider_api.answers += [
        (200, {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "r1"}),
        (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发小时级流控", "RequestId": "r2"}),
        (400, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "r3"}),
    ]

    sent = provider.send("13912345678", TEXT, SIGNATURE, message_type="complaint_acknowledgement", reference="m-1")
    assert sent == "900619746936498440^0"
    path, _, _ = provider_api.requests[0]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
    assert query["PhoneNumbers"] == "13912345678" and query["SignName"] == SIGNATURE  # no brackets: Aliyun adds them
    assert query["TemplateCode"] == "SMS_1234" and query["OutId"] == "m-1"
    assert json.loads(query["TemplateParam"]) == {"content": TEXT}

    with pytest.raises(SmsSendError) as limited:
        provider.send("13912345678", TEXT, SIGNATURE, message_type="complaint_acknowledgement", reference="m-2")
    assert limited.value.retryable and "isv.BUSINESS_LIMIT_CONTROL" in str(limited.value)
    with pytest.raises(SmsSendError) as wrong:
        provider.send("1391234", TEXT, SIGNATURE, message_type="complaint_acknowledgement", reference="m-3")
    assert not wrong.value.retryable and "isv.MOBILE_NUMBER_ILLEGAL" in str(wrong.value)


def test_tencent_sends_the_text_in_the_template_and_reads_ok_a_limit_and_a_wrong_number(
    provider_api: ProviderApi,
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        sms_provider="tencent",
        sms_tencent_secret_id="AKID-test",
        sms_tencent_secret_key="secret",
        sms_tencent_sdk_app_id="1400000001",
        sms_tencent_endpoint=provider_api.url,
        sms_templates={"complaint_acknowledgement": "123456"},
    )
    provider = TencentProvider(settings)
    status = {"PhoneNumber": "+8613912345678", "Fee": 1, "SessionContext": "m-1", "IsoCode": "CN"}
    ok = {**status, "SerialNo": "5000:104571", "Code": "Ok", "Message": "send success"}
    limit = {"Code": "LimitExceeded.PhoneNumberDailyLimit", "Message": "单个手机号日下发条数超过上限"}
    wrong_number = {
        **status,
        "SerialNo": "",
        "Code": "InvalidParameterValue.IncorrectPhoneNumber",
        "Message": "手机号格式错误",
    }
    provider_api.answers += [
        (200, {"Response": {"SendStatusSet": [ok], "RequestId": "r1"}}),
        (200, {"Response": {"Error": limit, "RequestId": "r2"}}),
        (200, {"Response": {"SendStatusSet": [wrong_number], "RequestId": "r3"}}),
    ]

    sent = provider.send("13912345678", TEXT, SIGNATURE, message_type="complaint_acknowledgement", reference="m-1")
    assert sent == "5000:104571"
    _, headers, body = provider_api.requests[0]
    assert headers["X-TC-Action"] == "SendSms" and headers["X-TC-Region"] == "ap-guangzhou"
    assert json.loads(body) == {
        "PhoneNumberSet": ["+8613912345678"],
        "SmsSdkAppId": "1400000001",
        "SignName": SIGNATURE,
        "TemplateId": "123456",
        "TemplateParamSet": [TEXT],
        "SessionContext": "m-1",
    }

    with pytest.raises(SmsSendError) as limited:
        provider.send("13912345678", TEXT, SIGNATURE, message_type="complaint_acknowledgement", reference="m-2")
    assert limited.value.retryable and "LimitExceeded.PhoneNumberDailyLimit" in str(limited.value)
    with pytest.raises(SmsSendError) as wrong:
        provider.send("1391234", TEXT, SIGNATURE, message_type="complaint_acknowledgement", reference="m-3")
    assert not wrong.value.retryable and "IncorrectPhoneNumber" in str(wrong.value)


def test_a_provider_that_does_not_answer_is_a_fault_worth_retrying(provider_api: ProviderApi) -> None:
    """The Aliyun SDK reports a refused connection, after its own retries, as ``UnretryableException`` (code None):
    the Tencent SDK as ``ClientNetworkError``. Read as permanent refusals, a network outage turned every waiting
    SMS into a dead letter."""
    closed = provider_api.url.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        sms_provider="aliyun",
        sms_aliyun_access_key_id="LTAI-test",
        sms_aliyun_access_key_secret="secret",
        sms_aliyun_endpoint=closed,
        sms_templates={"complaint_acknowledgement": "SMS_1234"},
        sms_timeout_seconds=2,
    )
    with pytest.raises(SmsSendError) as down:
        AliyunProvider(settings).send(
            "13912345678", TEXT, SIGNATURE, message_type="complaint_acknowledgement", reference="m"
        )
    assert down.value.retryable  # not a dead letter: the next delivery pass tries again

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        sms_provider="tencent",
        sms_tencent_secret_id="AKID-test",
        sms_tencent_secret_key="secret",
        sms_tencent_sdk_app_id="1400000001",
        sms_tencent_endpoint=closed,
        sms_templates={"complaint_acknowledgement": "123456"},
        sms_timeout_seconds=2,
    )
    with pytest.raises(SmsSendError) as down:
        TencentProvider(settings).send(
            "13912345678", TEXT, SIGNATURE, message_type="complaint_acknowledgement", reference="m"
        )
    assert down.value.retryable and "ClientNetworkError" in str(down.value)
