from leyline.logic.processing import LAST_WORKING_PERCENT, ProgressReporter


class RecordingTasks:
    """Stands in for the table: records each progress write."""

    def __init__(self) -> None:
        self.writes: list[int] = []

    def set_progress(self, task_id: str, progress: int) -> bool:
        self.writes.append(progress)
        return True  # the task is still PROCESSING


def test_progress_never_goes_backwards_even_after_a_retry_restarts_the_work():
    # Given a task that had reached 40% before its run crashed
    tasks = RecordingTasks()
    reporter = ProgressReporter(tasks, "t", floor=40)

    # When the retry reports from the beginning again
    for fraction in (0.0, 0.2, 0.45, 0.3, 0.9):
        reporter.report(fraction)

    # Then users never see less than 40%, and never a drop
    assert min(tasks.writes) >= 40
    assert tasks.writes == sorted(tasks.writes)
    assert tasks.writes[-1] == 90


def test_progress_stops_short_of_100_until_the_task_is_marked_done():
    tasks = RecordingTasks()
    reporter = ProgressReporter(tasks, "t", floor=0)
    reporter.report(1.0)
    assert tasks.writes == [LAST_WORKING_PERCENT]
