import importlib

import pytest

import miyabi_analytics as ma

# Every name CONTRACT.md promises at the package top level.
CONTRACT_NAMES = (
    "AGENT_TYPES",
    "AIEntrepreneurAgent",
    "AgentExecutionResult",
    "AnalyticsAgent",
    "CRMAgent",
    "ContentCreationAgent",
    "ExecutionResultBuilder",
    "ExecutionStatus",
    "ExecutionStore",
    "FunnelDesignAgent",
    "InvalidStatusTransition",
    "JonathanIveDesignAgent",
    "MarketResearchAgent",
    "MarketingAgent",
    "MiyabiError",
    "NotFound",
    "PersistableAgent",
    "PersonaAgent",
    "ProductConceptAgent",
    "ProductDesignAgent",
    "SNSStrategyAgent",
    "SalesAgent",
    "SelfAnalysisAgent",
    "ValidationError",
    "YouTubeAgent",
    "agent_category",
    "agent_for",
    "agents",
    "connect",
    "migrate",
    "read_logs",
    "read_summary",
)


def test_all_is_sorted():
    assert list(ma.__all__) == sorted(ma.__all__)


def test_all_has_no_duplicates():
    assert len(set(ma.__all__)) == len(ma.__all__)


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_contract_name_importable_and_listed(name):
    assert name in ma.__all__
    module = importlib.import_module("miyabi_analytics")
    assert getattr(module, name) is not None


def test_every_all_name_exists():
    missing = [name for name in ma.__all__ if not hasattr(ma, name)]
    assert missing == []


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from miyabi_analytics import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(ma.__all__)


def test_agents_module_all_names_exist_and_sorted():
    from miyabi_analytics import agents

    assert list(agents.__all__) == sorted(agents.__all__)
    assert all(hasattr(agents, name) for name in agents.__all__)


def test_error_hierarchy():
    assert issubclass(ma.ValidationError, ma.MiyabiError)
    assert issubclass(ma.ValidationError, ValueError)
    assert issubclass(ma.InvalidStatusTransition, ma.ValidationError)
    assert issubclass(ma.NotFound, ma.MiyabiError)
    assert issubclass(ma.NotFound, LookupError)
    assert issubclass(ma.SchemaError, ma.MiyabiError)


def test_status_enum_members():
    assert [m.name for m in ma.ExecutionStatus] == ["PENDING", "RUNNING", "COMPLETED", "FAILED"]
