"""Assembling the operator loop from settings: what is plugged in, in which order."""

from __future__ import annotations

from pathlib import Path

from serving.config.settings import load_settings
from serving.context.policy import ContextWindowPolicy
from serving.engine.fake import FakeEngine
from serving.feedback.recorder import ResponseRecorderHook
from serving.moderation.input_policy import InputModerationPolicy
from serving.moderation.stream_hook import OutputModerationHook
from serving.operator_loop import CLASSIFIER_ARG, EMBEDDINGS_ARG, OperatorHandles, build_operator, operator_deployments
from serving.privacy.audit_hook import AuditStreamHook


def routes(op) -> set[str]:
    return {route.path for router in op.routers for route in router.routes}


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings({"feedback": {"database_url": f"sqlite:///{tmp_path}/f.db"}})
    op = build_operator(settings, FakeEngine())
    try:
        assert [type(p) for p in op.policies] == [ContextWindowPolicy, InputModerationPolicy]
        assert [type(h) for h in op.stream_hooks] == [OutputModerationHook, ResponseRecorderHook]
        assert routes(op) == {"/v1/moderations", "/v1/feedback"}
    finally:
        op.close()


def test_everything_on_and_hook_order(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "feedback": {"database_url": f"sqlite:///{tmp_path}/f.db"},
            "privacy": {"audit": {"enabled": True, "dir": str(tmp_path / "a")}},
            "embeddings": {"enabled": True},
        }
    )
    op = build_operator(settings, FakeEngine(), handles=OperatorHandles(embeddings=object()))
    try:
        # Innermost first: the recorder and the audit log see the moderated stream.
        assert [type(h) for h in op.stream_hooks] == [OutputModerationHook, ResponseRecorderHook, AuditStreamHook]
        assert routes(op) == {"/v1/moderations", "/v1/feedback", "/v1/embeddings"}
    finally:
        op.close()


def test_everything_off() -> None:
    settings = load_settings(
        {"feedback": {"enabled": False}, "moderation": {"enabled": False}, "context": {"policy": "off"}}
    )
    op = build_operator(settings, FakeEngine())
    assert op.policies == () and op.stream_hooks == () and op.routers == ()


def test_embeddings_without_a_deployment_serve_no_route(tmp_path: Path) -> None:
    settings = load_settings({"feedback": {"enabled": False}, "embeddings": {"enabled": True}})
    assert "/v1/embeddings" not in routes(build_operator(settings, FakeEngine()))


def test_deployments_follow_settings() -> None:
    assert operator_deployments(load_settings({})) == {}
    apps = operator_deployments(
        load_settings({"embeddings": {"enabled": True}, "moderation": {"classifier": {"enabled": True}}})
    )
    assert set(apps) == {EMBEDDINGS_ARG, CLASSIFIER_ARG}
    assert OperatorHandles.from_kwargs({EMBEDDINGS_ARG: "h"}).embeddings == "h"


def test_operator_deployments_get_the_log_redaction_switch() -> None:
    settings = load_settings(
        {"embeddings": {"enabled": True}, "privacy": {"redact_logs": False}, "moderation": {"classifier": {"enabled": True}}}
    )
    apps = operator_deployments(settings)
    assert apps[EMBEDDINGS_ARG]._bound_deployment.init_args[1]["redact_logs"] is False
    replica = apps[CLASSIFIER_ARG]._bound_deployment.func_or_class
    assert replica.__init__.__closure__ and any(
        getattr(cell.cell_contents, "redact_logs", None) is False for cell in replica.__init__.__closure__
    )


def test_engine_without_token_counting_skips_the_context_policy(tmp_path: Path) -> None:
    class NoCounting:
        info = FakeEngine().info

    settings = load_settings({"feedback": {"enabled": False}})
    op = build_operator(settings, NoCounting())  # type: ignore[arg-type]
    assert not any(isinstance(p, ContextWindowPolicy) for p in op.policies)
