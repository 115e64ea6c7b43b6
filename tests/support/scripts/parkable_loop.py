"""A loop that can be parked: it registers a checkpoint handler and continues what it saved when
started again (nexus.init(resume="allow")). Its whole state is one JSON file in the run folder, so
a test can check it continued rather than started over. The folder comes from NEXUS_RUN_DIR."""

import json

import nexus

run = nexus.init(resume="allow", total_steps=100_000)
saved = run.dir / "state.json"
state = json.loads(saved.read_text()) if saved.exists() else {"w": 1.0, "starts": 0}
state["starts"] += 1


@run.on_checkpoint
def save() -> str:
    saved.write_text(json.dumps({**state, "step": run.step - 1}))
    return str(saved)


while not run.should_stop:
    state["w"] *= 0.999
    run.log({"loss": state["w"]})
    run.step_end()
run.finish()
