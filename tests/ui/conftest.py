import pytest

from studio.backends.thread import ThreadEngine as Worker
from studio.library.history import History
from studio.state import State


@pytest.fixture
def live_state(tmp_path):
    """A State wired to a real, running worker (CPU) with its own history; the worker stops afterwards."""
    state = State()
    worker = Worker(history=History(tmp_path / "h.sqlite3", tmp_path / "out"), device_override="cpu")
    worker.message.connect(state.handle_message)
    state.submit_requested.connect(worker.submit)
    state.cancel_requested.connect(lambda job_id: worker.cancel(job_id))  # as the app wires it
    worker.start()
    yield state
    worker.stop()
