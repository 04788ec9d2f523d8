"""Every mail a customer receives reads as a careful service agent writes a letter: 尊敬的…, 您好, the case, what
happens next and by when (北京时间), 此致／敬礼, the signature and the date — no stray spaces between Chinese
characters, no spoken closing, no internal milestone names. The lint refuses what does not, naming rule and text."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from jinja2 import ChoiceLoader, DictLoader, PackageLoader
from sqlalchemy.orm import Session

from kefu.models.policy import Policy
from kefu.notifications import SPECS, Category, MessageRejected, MessageType, Renderer, enqueue, lint_text
from kefu.notifications.lint import html_text
from tests.support.clock import SHANGHAI
from tests.support.databases import edit_policy
from tests.support.samples import CONTEXTS

CUSTOMER_TYPES = [t for t in MessageType if not SPECS[t].internal]
WRITTEN_ON = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
# What a letter ends with: the formula on two lines, the policy's signature, the date it is written.
CLOSING = "此致\n敬礼！\n\n客户服务部\n2026年11月23日\n"


def _renderer_with(name: str, source: str) -> Renderer:
    return Renderer(loader=ChoiceLoader([DictLoader({name: source}), PackageLoader("kefu.notifications", "templates")]))


def parts(message_type: MessageType) -> dict[str, str]:
    """The text part (subject first) and the HTML part as its reader sees it."""
    rendered = Renderer().render(message_type, CONTEXTS[message_type], now=WRITTEN_ON)
    return {"text": rendered.subject + "\n" + rendered.text, "html": html_text(rendered.html)}


# ---------------------------------------------------------------- the lint's new rules


def test_a_space_between_chinese_characters_is_refused_naming_the_rule_and_the_text() -> None:
    findings = lint_text("您好！您的投诉由 客服中心 负责跟进处理，谢谢。", customer_facing=True)
    assert [str(f) for f in findings] == ["中文字符之间不应有空格：「的投诉由 客服中心 负责跟进」"]
    # internal mails too; and a full-width space is a space
    internal = lint_text("请在今天之前联系客户\u3000张三。", customer_facing=False)
    assert [f.category for f in internal] == [Category.SPACING]


def test_spaces_next_to_latin_letters_or_digits_and_before_the_sign_off_are_not_refused() -> None:
    text = "您好！投诉编号为 KF20261123-00001，我们将在2026年11月24日 10:00（北京时间）之前与您联系，谢谢。"
    assert lint_text(text, customer_facing=True) == []
    signed = "您好！感谢您的支持。\n\n顺达物流客户服务部 敬上\n2026年12月1日"
    assert lint_text(signed, customer_facing=True, letter=True) == []


@pytest.mark.parametrize(
    ("ending", "named"),
    [
        pytest.param("客户服务部 敬上，再见！\n2026年12月1日", "再见", id="goodbye-after-the-sign-off"),
        pytest.param("此致\n敬礼！\n\n客户服务部\n2026年12月1日\n拜拜！", "拜拜", id="spoken-closing"),
        pytest.param("此致敬礼！\n\n客户服务部\n2026年12月1日", "此致", id="formula-on-one-line"),
        pytest.param("客户服务部\n2026年12月1日", "缺少结尾敬语", id="no-closing-formula"),
        pytest.param("此致\n敬礼！\n\n客户服务部", "缺少日期", id="no-date"),
        pytest.param("此致\n敬礼！\n\n2026年12月1日", "缺少落款署名", id="no-signature"),
        pytest.param("此致\n敬礼！\n\n客户服务部\n2026年12月1日\n祝您愉快", "祝您愉快", id="words-after-the-date"),
    ],
)
def test_a_closing_that_does_not_fit_a_letter_is_refused(ending: str, named: str) -> None:
    findings = lint_text(f"尊敬的张三：\n您好！感谢您的耐心等待。\n{ending}", customer_facing=True, letter=True)
    assert findings and {f.category for f in findings} == {Category.CLOSING}, findings
    assert any(named in str(f) and str(f).startswith("结尾不符合书信格式：") for f in findings), findings


def test_a_short_message_that_is_not_a_letter_needs_no_letter_closing_but_no_spoken_one_either() -> None:
    assert lint_text("【顺达物流】您好，您的投诉已受理，谢谢。", customer_facing=True) == []
    spoken = lint_text("【顺达物流】您好，您的投诉已受理，谢谢，再见！", customer_facing=True)
    assert [str(f) for f in spoken] == ["结尾不符合书信格式：口语结束语「再见」不适合书面消息"]
    assert lint_text("您好，期待与您再见面，谢谢。", customer_facing=True) == []


@pytest.mark.parametrize(
    ("template", "shows"),
    [
        pytest.param(
            "{% extends '_customer.txt.j2' %}{% block subject %}受理{{ case_no }}{% endblock %}"
            "{% block body %}您的投诉由 {{ owner_name }} 负责，{{ next_contact_at|zh_time }}前联系您。{% endblock %}",
            "由 李客服 负责",
            id="value-with-spaces-around",
        ),
        pytest.param(
            "{{ case_no }}已受理\n尊敬的{{ customer_name }}：\n您好！{{ owner_name }}负责，"
            "{{ next_contact_at|zh_time }}前联系您，谢谢。\n客户服务部 敬上，再见！\n{{ letter_date }}",
            "再见",
            id="goodbye-after-the-sign-off",
        ),
    ],
)
def test_a_mail_rendered_with_spaces_or_a_spoken_closing_is_never_queued(
    db: Session, template: str, shows: str
) -> None:
    renderer = _renderer_with("complaint_acknowledgement.txt.j2", template)
    with pytest.raises(MessageRejected) as caught:
        enqueue(
            db,
            MessageType.COMPLAINT_ACKNOWLEDGEMENT,
            recipient_email="zhangsan@example.com",
            context=CONTEXTS[MessageType.COMPLAINT_ACKNOWLEDGEMENT],
            renderer=renderer,
        )
    assert any(shows in reason for reason in caught.value.reasons), caught.value.reasons
    assert not db.new


def test_a_fault_only_the_html_part_shows_is_refused_and_said_to_be_in_the_html_part() -> None:
    html = (
        "{% extends '_customer.html.j2' %}{% block title %}受理{{ case_no }}{% endblock %}"
        "{% block body %}<p>由<b>{{ owner_name }}</b>\n负责，{{ next_contact_at|zh_time }}前联系您。</p>{% endblock %}"
    )
    rendered = _renderer_with("complaint_acknowledgement.html.j2", html).render(
        MessageType.COMPLAINT_ACKNOWLEDGEMENT, CONTEXTS[MessageType.COMPLAINT_ACKNOWLEDGEMENT]
    )
    # the line break inside the paragraph shows as a space in a browser
    assert [str(f) for f in rendered.findings] == ["中文字符之间不应有空格：「由李客服 负责，2」（HTML版）"]


# ---------------------------------------------------------------- the customer letters as written


@pytest.mark.parametrize("message_type", CUSTOMER_TYPES)
@pytest.mark.parametrize("part", ["text", "html"])
def test_every_customer_letter_passes_the_lint_in_both_parts(message_type: MessageType, part: str) -> None:
    assert lint_text(parts(message_type)[part], customer_facing=True, letter=True) == []


@pytest.mark.parametrize("message_type", CUSTOMER_TYPES)
@pytest.mark.parametrize("part", ["text", "html"])
def test_every_customer_letter_greets_by_name_and_closes_with_signature_and_date(
    message_type: MessageType, part: str
) -> None:
    _subject, body = parts(message_type)[part].split("\n", 1)
    name = CONTEXTS[message_type]["customer_name"]
    assert body.lstrip("\n").startswith(f"尊敬的{name}：\n"), body
    assert "您好！" in body
    assert re.sub(r"\n+", "\n", body).endswith(CLOSING.replace("\n\n", "\n")), body
    assert "再见" not in body and "敬上，" not in body


@pytest.mark.parametrize("message_type", [t for t in CUSTOMER_TYPES if "case_no" in SPECS[t].required])
@pytest.mark.parametrize("part", ["text", "html"])
def test_every_case_letter_names_the_case_and_writes_times_in_beijing_time(
    message_type: MessageType, part: str
) -> None:
    subject, body = parts(message_type)[part].split("\n", 1)
    assert "TS-20261123-0001" in subject and "TS-20261123-0001" in body
    if any(isinstance(CONTEXTS[message_type][k], dt.datetime) for k in SPECS[message_type].required):
        assert "2026年11月24日 18:00（北京时间）" in body  # what happens next, by when
    assert "+00:00" not in body and "UTC" not in body


def test_the_acknowledgement_promises_the_next_step_in_the_policys_customer_wording() -> None:
    context = dict(CONTEXTS[MessageType.COMPLAINT_ACKNOWLEDGEMENT], promise_wording="我们将在{due}之前向您告知处理进展")
    rendered = Renderer().render(MessageType.COMPLAINT_ACKNOWLEDGEMENT, context)
    assert rendered.ok, rendered.findings
    assert "我们将在2026年11月24日 18:00（北京时间）之前向您告知处理进展" in rendered.text
    assert "我们将在<strong>2026年11月24日 18:00（北京时间）</strong>之前向您告知处理进展" in rendered.html


def test_no_customer_letter_speaks_the_internal_language(policy: Policy) -> None:
    rules = [rule for severity in policy.complaints.severities.values() for rule in severity.milestones]
    internal = {rule.name for rule in [*rules, policy.complaints.callback]} | {rule.id.value for rule in rules}
    internal |= {"节点", "里程碑", "升级", "时限", "SLA", "general", "important", "major", "Kefu"}
    for message_type in CUSTOMER_TYPES:
        for part, text in parts(message_type).items():
            spoken = sorted(word for word in internal if word in text)
            assert not spoken, f"{message_type.value} ({part}) says {spoken}"


def test_a_letter_is_dated_the_day_it_leaves(db: Session) -> None:
    late_evening = dt.datetime(2026, 11, 23, 22, 30, tzinfo=SHANGHAI)  # Monday, after the business windows
    row = enqueue(
        db,
        MessageType.HOLIDAY_GREETING,
        recipient_email="zhangsan@example.com",
        context=CONTEXTS[MessageType.HOLIDAY_GREETING],
        now=late_evening,
    )
    assert row.not_before.astimezone(SHANGHAI).date() == dt.date(2026, 11, 24)
    assert row.body_text.endswith("客户服务部\n2026年11月24日\n")
    assert "客户服务部<br>2026年11月24日" in row.body_html


def test_the_signature_is_the_policys(db: Session, policy_file: Path) -> None:
    edit_policy(policy_file, "signature: 客户服务部", "signature: 顺达物流客户服务部")
    row = enqueue(
        db,
        MessageType.HOLIDAY_GREETING,
        recipient_email="zhangsan@example.com",
        context=CONTEXTS[MessageType.HOLIDAY_GREETING],
        now=WRITTEN_ON,
    )
    assert row.body_text.endswith("此致\n敬礼！\n\n顺达物流客户服务部\n2026年11月23日\n")
