"""Every message type renders in zh-CN, passes the phrase lint and carries its required elements."""

from __future__ import annotations

import pytest
from jinja2 import ChoiceLoader, DictLoader, PackageLoader
from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.notifications import OutboxMessage
from kefu.notifications import (
    SPECS,
    Category,
    MessageContextError,
    MessageRejected,
    MessageType,
    Renderer,
    enqueue,
    lint_text,
)
from kefu.notifications.lint import all_forbidden
from tests.support.samples import CONTEXTS


def test_every_message_type_has_a_sample_context() -> None:
    assert set(CONTEXTS) == set(MessageType)


@pytest.mark.parametrize("message_type", list(MessageType))
def test_every_message_type_renders_and_passes_the_lint(message_type: MessageType) -> None:
    rendered = Renderer().render(message_type, CONTEXTS[message_type])
    assert rendered.ok, rendered.findings
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert 'lang="zh-CN"' in rendered.html
    for key in SPECS[message_type].required:
        assert key not in rendered.text  # no placeholder leaks


def test_customer_acknowledgement_names_case_owner_and_committed_time() -> None:
    rendered = Renderer().render(MessageType.COMPLAINT_ACKNOWLEDGEMENT, CONTEXTS[MessageType.COMPLAINT_ACKNOWLEDGEMENT])
    assert "TS-20261123-0001" in rendered.subject
    assert "李客服" in rendered.text
    assert "2026年11月24日 18:00（北京时间）" in rendered.text
    assert "您好" in rendered.text and "感谢" in rendered.text


def test_solution_proposal_tells_how_to_accept_and_reject() -> None:
    rendered = Renderer().render(MessageType.SOLUTION_PROPOSAL, CONTEXTS[MessageType.SOLUTION_PROPOSAL])
    assert "同意或不同意该方案" in rendered.text and "仅打开页面不会作出任何决定" in rendered.text
    assert "/answer/abc" in rendered.text and 'href="http://127.0.0.1:8000/answer/abc"' in rendered.html


def test_html_part_escapes_what_customers_wrote() -> None:
    context = dict(CONTEXTS[MessageType.PROGRESS_UPDATE], progress="<script>alert(1)</script>")
    rendered = Renderer().render(MessageType.PROGRESS_UPDATE, context)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "<script>alert(1)</script>" in rendered.text  # the plain-text part is not HTML


def test_a_missing_context_value_is_a_clear_error() -> None:
    context = dict(CONTEXTS[MessageType.COMPLAINT_ACKNOWLEDGEMENT])
    del context["owner_name"]
    with pytest.raises(MessageContextError, match="owner_name"):
        Renderer().render(MessageType.COMPLAINT_ACKNOWLEDGEMENT, context)


def test_internal_messages_mask_phone_and_id_numbers() -> None:
    context = dict(CONTEXTS[MessageType.SUPERVISOR_ESCALATION], reason="客户身份证号 110101199001011234 需核实")
    rendered = Renderer().render(MessageType.SUPERVISOR_ESCALATION, context)
    for part in (rendered.text, rendered.html):
        assert "13812348000" not in part and "138****8000" in part
        assert "110101199001011234" not in part and "110101********1234" in part


@pytest.mark.parametrize(("category", "phrase"), all_forbidden())
def test_every_forbidden_phrase_of_seed_002_is_caught(category: Category, phrase: str) -> None:
    findings = lint_text(f"尊敬的客户，您好！{phrase}谢谢！", customer_facing=True)
    assert [f.category for f in findings] == [category]


def test_full_width_punctuation_and_spaces_do_not_hide_a_forbidden_phrase() -> None:
    assert lint_text("您好，谢谢。不行 就是 不行！", customer_facing=True)
    assert lint_text("您好，谢谢。不可能！", customer_facing=True)


def test_harmless_words_near_forbidden_ones_pass() -> None:
    assert lint_text("您好，请问有什么能帮您？谢谢！", customer_facing=True) == []


def test_rude_particles_and_missing_polite_forms_are_caught() -> None:
    assert {f.category for f in lint_text("您好，谢谢，就这样嘛！", customer_facing=True)} == {Category.RUDE_PATTERN}
    assert {f.category for f in lint_text("货到了。", customer_facing=True)} == {Category.MISSING_POLITE_FORM}
    assert lint_text("货到了。", customer_facing=False) == []


def _renderer_with(name: str, source: str) -> Renderer:
    return Renderer(loader=ChoiceLoader([DictLoader({name: source}), PackageLoader("kefu.notifications", "templates")]))


BAD_TEMPLATES = [
    pytest.param(
        "{% extends '_customer.txt.j2' %}{% block subject %}受理{{ case_no }}{% endblock %}"
        "{% block body %}喂，{{ owner_name }}负责，{{ next_contact_at|zh_time }}联系。{% endblock %}",
        Category.DIRECT_ADDRESS,
        id="direct-address",
    ),
    pytest.param(
        "{% extends '_customer.txt.j2' %}{% block subject %}受理{{ case_no }}{% endblock %}"
        "{% block body %}你有完没完？{{ owner_name }}负责，{{ next_contact_at|zh_time }}联系。{% endblock %}",
        Category.INTERROGATION,
        id="interrogation",
    ),
    pytest.param(
        "{% extends '_customer.txt.j2' %}{% block subject %}受理{{ case_no }}{% endblock %}"
        "{% block body %}这不关我的事！{{ owner_name }}负责，{{ next_contact_at|zh_time }}联系。{% endblock %}",
        Category.EVASION,
        id="evasion",
    ),
    pytest.param(
        "{% extends '_customer.txt.j2' %}{% block subject %}受理{{ case_no }}{% endblock %}"
        "{% block body %}不想用就别用！{{ owner_name }}负责，{{ next_contact_at|zh_time }}联系。{% endblock %}",
        Category.IMPATIENCE,
        id="impatience",
    ),
    pytest.param(
        "{% extends '_customer.txt.j2' %}{% block subject %}受理{{ case_no }}{% endblock %}"
        "{% block body %}{{ owner_name }}负责，联系时间另行通知。{% endblock %}",
        Category.MISSING_ELEMENT,
        id="no-committed-time",
    ),
    pytest.param(
        "{% block subject %}受理{{ case_no }}{% endblock %}\n"
        "{{ customer_name }}：{{ owner_name }}负责，{{ next_contact_at|zh_time }}联系。",
        Category.MISSING_POLITE_FORM,
        id="no-polite-forms",
    ),
]


@pytest.mark.parametrize(("template", "category"), BAD_TEMPLATES)
def test_a_violating_template_is_never_queued_and_the_caller_is_told_why(
    db: Session, template: str, category: Category
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
    assert category in {f.category for f in caught.value.rendered.findings}
    assert any(category.value in reason for reason in caught.value.reasons)
    assert not db.new  # nothing written: recording the rejection is the caller's business
    db.commit()
    assert db.scalars(select(OutboxMessage)).all() == []


def test_repeating_a_flow_step_with_the_same_dedupe_key_queues_one_message(db: Session) -> None:
    kwargs = dict(
        recipient_email="zhangsan@example.com",
        context=CONTEXTS[MessageType.HOLIDAY_GREETING],
        dedupe_key="holiday:2027-spring:customer-1",
    )
    first = enqueue(db, MessageType.HOLIDAY_GREETING, **kwargs)  # type: ignore[arg-type]
    second = enqueue(db, MessageType.HOLIDAY_GREETING, **kwargs)  # type: ignore[arg-type]
    db.commit()
    assert first.id == second.id
    assert len(db.scalars(select(OutboxMessage)).all()) == 1


def test_a_recipient_that_is_not_an_email_address_is_refused(db: Session) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        enqueue(
            db,
            MessageType.HOLIDAY_GREETING,
            recipient_email="13812348000",
            context=CONTEXTS[MessageType.HOLIDAY_GREETING],
        )
    assert db.scalars(select(OutboxMessage)).all() == []
