import uuid

import pytest

import miyabi_analytics as ma
from miyabi_analytics import agents

# The design's order: strategy, marketing, operations, design.
EXPECTED = (
    ("AIEntrepreneurAgent", "strategy"),
    ("SelfAnalysisAgent", "strategy"),
    ("PersonaAgent", "strategy"),
    ("ProductConceptAgent", "strategy"),
    ("ProductDesignAgent", "strategy"),
    ("FunnelDesignAgent", "strategy"),
    ("MarketResearchAgent", "marketing"),
    ("ContentCreationAgent", "marketing"),
    ("SNSStrategyAgent", "marketing"),
    ("MarketingAgent", "marketing"),
    ("YouTubeAgent", "marketing"),
    ("SalesAgent", "operations"),
    ("CRMAgent", "operations"),
    ("AnalyticsAgent", "operations"),
    ("JonathanIveDesignAgent", "design"),
)
NAMES = tuple(name for name, _ in EXPECTED)


def test_agent_types_in_design_order():
    assert isinstance(ma.AGENT_TYPES, tuple)
    assert ma.AGENT_TYPES == NAMES
    assert agents.AGENT_TYPES is ma.AGENT_TYPES


def test_agent_types_unique_and_fifteen():
    assert len(ma.AGENT_TYPES) == 15
    assert len(set(ma.AGENT_TYPES)) == 15


def test_agent_types_fit_the_column():
    assert all(len(name) <= 50 for name in ma.AGENT_TYPES)


@pytest.mark.parametrize(("name", "category"), EXPECTED)
def test_agent_category(name, category):
    assert ma.agent_category(name) == category
    assert ma.agent_for(name).category == category


def test_category_sizes():
    counts: dict[str, int] = {}
    for name in ma.AGENT_TYPES:
        category = ma.agent_category(name)
        counts[category] = counts.get(category, 0) + 1
    assert counts == {"strategy": 6, "marketing": 5, "operations": 3, "design": 1}
    assert ma.AGENT_CATEGORIES == ("strategy", "marketing", "operations", "design")


@pytest.mark.parametrize("other", ["CodeGenAgent", "marketingagent", ""])
def test_agent_category_of_a_type_outside_the_15_is_other(other):
    # Reading is open (issue 14): other writers' agent types share the table.
    assert ma.agent_category(other) == "other"


@pytest.mark.parametrize("bad", [None, 1])
def test_agent_category_refuses_non_strings(bad):
    with pytest.raises(ma.ValidationError) as info:
        ma.agent_category(bad)
    assert info.value.field == "agent_type"
    assert info.value.value == bad


@pytest.mark.parametrize("name", NAMES)
def test_agent_for(name):
    agent = ma.agent_for(name)
    cls = getattr(ma, name)
    assert type(agent) is cls
    assert isinstance(agent, ma.PersistableAgent)
    assert agent.agent_type == name
    assert ma.agent_for(name) is not agent  # a new object each time


@pytest.mark.parametrize("bad", ["CodeGenAgent", "PersistableAgent", "analyticsagent", None])
def test_agent_for_refuses_unknown(bad):
    with pytest.raises(ma.ValidationError):
        ma.agent_for(bad)


@pytest.mark.parametrize("name", NAMES)
def test_class_name_is_agent_type(name):
    cls = getattr(agents, name)
    assert cls.__name__ == name
    assert cls.agent_type == name
    assert cls().agent_type == name
    assert issubclass(cls, ma.PersistableAgent)


@pytest.mark.parametrize("name", NAMES)
def test_class_exported_at_top_level_and_in_agents(name):
    assert getattr(ma, name) is getattr(agents, name)
    assert name in ma.__all__
    assert name in agents.__all__


def test_persistable_agent_subclasses_are_exactly_the_fifteen():
    assert {cls.__name__ for cls in ma.PersistableAgent.__subclasses__()} == set(NAMES)


def test_builder_is_preset_to_the_agent():
    repo = uuid.uuid4()
    record = ma.YouTubeAgent().builder(repo).build()
    assert record.agent_type == "YouTubeAgent"
    assert record.repository_id == repo


def test_repr_names_the_class():
    assert repr(ma.CRMAgent()) == "CRMAgent()"
