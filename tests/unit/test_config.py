import pytest

from leyline.config import ConfigError, Settings

VALID = {
    "TASKS_TABLE": "tasks",
    "MEDIA_BUCKET": "media",
    "MODEL_SECONDS": "1.5",
    "MAX_UPLOAD_BYTES": "1000",
    "MAX_FORM_UPLOAD_BYTES": "500",
    "RETENTION_DAYS": "7",
    "UPLOAD_URL_SECONDS": "900",
    "VIDEO_URL_SECONDS": "3600",
    "MAX_WAITING_TASKS_PER_CLIENT": "5",
}


def test_settings_are_read_and_typed():
    settings = Settings.from_env(VALID)
    assert settings.model_seconds == 1.5
    assert settings.max_upload_bytes == 1000
    assert settings.idempotency_table is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKS_TABLE", ""),
        ("MODEL_SECONDS", "fast"),
        ("MODEL_SECONDS", "0"),
        ("VIDEO_URL_SECONDS", "7200"),
        ("VIDEO_SECONDS", "0.5"),
        ("VIDEO_SECONDS", "11"),
    ],
)
def test_bad_settings_stop_the_cold_start(name, value):
    with pytest.raises(ConfigError):
        Settings.from_env({**VALID, name: value})


def test_a_functions_own_settings_are_read_when_its_environment_has_them():
    # Given the environment every function has, and TaskEventsFunction's and DispatchFunction's own variables
    own = {
        "TASK_EVENT_BUS": "leyline-task-events",
        "SLOTS_QUEUE_URL": "https://sqs/slots.fifo",
        "SLOT_WAKE_QUEUE_URL": "https://sqs/wakes",
    }
    # When the settings are read, with and without them
    given, absent = Settings.from_env({**VALID, **own}), Settings.from_env(VALID)
    # Then they are there when given, None when not (the function that needs one refuses to start without it)
    assert (given.task_event_bus, given.slots_queue_url) == ("leyline-task-events", "https://sqs/slots.fifo")
    assert given.slot_wake_queue_url == "https://sqs/wakes"
    assert (absent.task_event_bus, absent.slots_queue_url, absent.slot_wake_queue_url) == (None, None, None)


def test_the_video_length_is_the_templates_default_unless_the_processor_is_given_one():
    # Given the environment every function has, with and without ProcessorFunction's VIDEO_SECONDS
    given, absent = Settings.from_env({**VALID, "VIDEO_SECONDS": "1"}), Settings.from_env(VALID)
    # Then the processor encodes what it was given, and 3 s (the template's default) without it
    assert (given.video_seconds, absent.video_seconds) == (1.0, 3.0)
