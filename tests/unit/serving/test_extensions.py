"""The ordered feature list, composed from settings: what is plugged in, in which order."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import httpx

from serving.config.settings import load_settings
from serving.context.policy import ContextWindowPolicy
from serving.core.extension import BuildContext, Feature, compose, deployments
from serving.embeddings.extension import EMBEDDINGS_HANDLE
from serving.engine.fake import FakeEngine
from serving.extensions import FEATURES
from serving.feedback.recorder import ResponseRecorder
from serving.gateway.admission.policy import AdmissionPolicy
from serving.gateway.auth.policy import IdentityPolicy
from serving.gateway.hygiene.policy import HygienePolicy
from serving.moderation.extension import CLASSIFIER_HANDLE
from serving.moderation.input_policy import InputModerationPolicy
from serving.moderation.stream_hook import OutputModerationHook
from serving.privacy.audit_observer import AuditObserver
from tests.unit.apps import build_app


def composed(settings, engine=None, **ctx):
    out = compose(FEATURES, BuildContext(settings=settings, engine=engine or FakeEngine(), **ctx))
    return out


def routes(out) -> set[str]:
    return {route.path for router in out.routers for route in router.routes}


def test_defaults(tmp_path: Path) -> None:
    out = composed(load_settings({"feedback": {"database_url": f"sqlite:///{tmp_path}/f.db"}}))
    try:
        assert list(out.by_feature) == ["gateway", "context", "moderation", "feedback"]
        assert [type(p) for p in out.policies] == [
            IdentityPolicy, HygienePolicy, AdmissionPolicy, ContextWindowPolicy, InputModerationPolicy,
        ]
        assert [type(h) for h in out.stream_hooks] == [OutputModerationHook]
        assert [type(o) for o in out.observers] == [ResponseRecorder]
        assert routes(out) == {"/v1/moderations", "/v1/feedback"}
    finally:
        out.close()


def test_everything_on_and_observer_order(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "feedback": {"database_url": f"sqlite:///{tmp_path}/f.db"},
            "privacy": {"audit": {"enabled": True, "dir": str(tmp_path / "a")}},
            "embeddings": {"enabled": True},
        }
    )
    out = composed(settings, handles={EMBEDDINGS_HANDLE: object()})
    try:
        assert [type(o) for o in out.observers] == [ResponseRecorder, AuditObserver]
        assert routes(out) == {"/v1/moderations", "/v1/feedback", "/v1/embeddings"}
    finally:
        out.close()


def test_everything_off_leaves_the_gateway() -> None:
    settings = load_settings(
        {"feedback": {"enabled": False}, "moderation": {"enabled": False}, "context": {"policy": "off"}}
    )
    out = composed(settings)
    assert list(out.by_feature) == ["gateway"]
    assert out.stream_hooks == [] and out.observers == [] and out.routers == []


def test_the_route_guard_runs_only_the_gateways_policies(tmp_path: Path) -> None:
    ctx = BuildContext(settings=load_settings({"feedback": {"enabled": False}}), engine=FakeEngine())
    out = compose(FEATURES, ctx)
    assert list(ctx.route_guard.policies) == out.by_feature["gateway"].policies


def test_embeddings_without_a_deployment_serve_no_route() -> None:
    settings = load_settings({"feedback": {"enabled": False}, "embeddings": {"enabled": True}})
    assert "/v1/embeddings" not in routes(composed(settings))


def test_deployments_follow_settings() -> None:
    assert deployments(FEATURES, load_settings({})) == {}
    apps = deployments(
        FEATURES, load_settings({"embeddings": {"enabled": True}, "moderation": {"classifier": {"enabled": True}}})
    )
    assert set(apps) == {EMBEDDINGS_HANDLE, CLASSIFIER_HANDLE}


def test_feature_deployments_get_the_log_redaction_switch() -> None:
    settings = load_settings(
        {"embeddings": {"enabled": True}, "privacy": {"redact_logs": False}, "moderation": {"classifier": {"enabled": True}}}
    )
    apps = deployments(FEATURES, settings)
    assert apps[EMBEDDINGS_HANDLE]._bound_deployment.init_args[1]["redact_logs"] is False
    replica = apps[CLASSIFIER_HANDLE]._bound_deployment.func_or_class
    assert replica.__init__.__closure__ and any(
        getattr(cell.cell_contents, "redact_logs", None) is False for cell in replica.__init__.__closure__
    )


def test_engine_without_token_counting_skips_the_context_policy() -> None:
    class NoCounting:
        info = FakeEngine().info
        load = FakeEngine().load

    out = composed(load_settings({"feedback": {"enabled": False}}), engine=NoCounting())
    assert not any(isinstance(p, ContextWindowPolicy) for p in out.policies)


# docs/architecture.md, "How to add a policy", done exactly as written: one new module, one
# line in the list. The policy refuses requests that carry an x-block header.
NEW_POLICY_MODULE = '''
from serving.core.extension import Extension
from serving.errors import PermissionDeniedError


class BlockHeaderPolicy:
    async def before(self, ctx):
        if "x-block" in ctx.headers:
            raise PermissionDeniedError("blocked by header")
        return None

    async def after(self, ctx, result):
        self.last_outcome = result.outcome


def build(ctx):
    return Extension(policies=[BlockHeaderPolicy()])
'''


async def test_adding_a_policy_is_one_module_and_one_line(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "block_header.py").write_text(textwrap.dedent(NEW_POLICY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import block_header  # the new module

    features = (*FEATURES, Feature("block_header", block_header.build))  # the one line
    try:
        app = build_app({"feedback": {"enabled": False}}, FakeEngine(), features=features)
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            blocked = await client.post("/v1/chat/completions", json=body, headers={"x-block": "1"})
            passed = await client.post("/v1/chat/completions", json=body)
        assert blocked.status_code == 403 and blocked.json()["error"]["message"] == "blocked by header"
        assert passed.status_code == 200
        (policy,) = app.state.extensions.by_feature["block_header"].policies
        assert policy.last_outcome == "ok"
    finally:
        sys.modules.pop("block_header", None)


def test_sticky_routing_sets_the_model_deployments_request_router() -> None:
    from serving.core.extension import model_options

    assert model_options(FEATURES, load_settings({})) == {}
    options = model_options(FEATURES, load_settings({"context": {"sticky_routing": {"enabled": True}}}))
    assert options["request_router_config"]["request_router_class"] == "serving.context.routing:SessionAffinityRouter"
