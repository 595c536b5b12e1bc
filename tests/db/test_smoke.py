import uuid

import miyabi_analytics as ma


def test_save_and_read_back(engine):
    agent = ma.MarketingAgent()
    record = agent.builder(uuid.uuid4()).status("running").start_now().build()
    assert agent.save_execution(engine, record) == record.id
    frame = ma.read_summary(engine)
    assert frame["id"].tolist() == [str(record.id)]
