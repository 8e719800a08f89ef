"""The false-alarm benchmark task (edge.bench.alarms): the same events as `edge run`'s pipeline on the same
footage, counted per hour, units resumable row by row, and the tolerance that engines match the count."""
import pytest

from edge.bench import tolerances
from edge.bench.alarms import AlarmTask, Footage, WithAlarms, load_held_back
from edge.classify.runtime import ClassifierRuntime
from edge.stream.pipeline import Pipeline, StreamInput
from edge.stream.sources import open_source
from fixtures.numpy_engines import LABELS, classifier_engines, read_clip
from test_stream_pipeline import CLIP, Collect

# rules that make the numpy stand-in raise events on real footage: every label but idle is an alarm
RULES = {"default": {"alarm": True, "start": 0.3, "end": 0.2, "enter": 1, "exit": 1},
         "classes": {"idle": {"event": False}}}


def _engines():
    return classifier_engines(window=4, stride=2, alarms=RULES)


def test_alarm_task_counts_what_the_pipeline_raises():
    frames = read_clip(CLIP)[:100]
    task = AlarmTask([Footage("carphone", frames, 25.0)], "carphone")
    task.chunk = 30                                    # several units: the stream state carries over
    res = task.run(_engines())
    sink = Collect()
    Pipeline([StreamInput(open_source(str(CLIP)))], classifier=ClassifierRuntime(_engines()), sinks=[sink],
             max_frames=100).run()
    ref = [(e.label, e.frame) for r in sink.results for e in r.events if e.type == "action_start" and e.alarm]
    got = [(a[0], a[1]) for a in res.metrics["alarm_footage"]["carphone"]["alarms"]]
    assert ref and got == ref
    assert res.metrics["alarm_events"] == len(ref)
    assert res.metrics["alarm_events_per_hour"] == pytest.approx(len(ref) / (100 / 25.0) * 3600)
    labels = [r.label for r in sink.results]
    assert res.outputs == [labels[k] for k in range(3, 100, 2)]       # one window every stride frames
    # how close the footage came: windows labelled with an alarm class (every label but idle here), best score
    near = [sink.results[k].label_score for k in range(3, 100, 2) if labels[k] in set(LABELS) - {"idle"}]
    assert near and res.metrics["alarm_class_windows"] == len(near)
    assert res.metrics["alarm_class_max_score"] == pytest.approx(max(near))


def test_rows_take_turns_and_agreement():
    frames = read_clip(CLIP)[:60]
    task = WithAlarms(_clip_task(), AlarmTask([Footage("a", frames, 30.0)], "a"))
    task.alarms.chunk = 25
    a, b = _engines(), _engines()
    parts = {0: [], 1: []}
    for u in range(task.units):                     # interleaved as the benchmark runner does
        for k, e in ((0, a), (1, b)):
            parts[k].append(task.run_unit(e, u))
    ra, rb = task.finish(parts[0]), task.finish(parts[1])
    assert ra.metrics["alarm_events"] == rb.metrics["alarm_events"] and ra.metrics["clips"] == 2
    agree = task.agreement(rb, ra)
    assert agree["alarm_events_delta"] == 0 and agree["alarm_window_agreement"] == 1.0
    assert agree["prediction_agreement"] == 1.0


def _clip_task():
    from edge.bench.tasks import ClassifierTask, LabelledClip
    frames = read_clip(CLIP)
    return ClassifierTask([LabelledClip("x", frames[:9], 0), LabelledClip("y", frames[20:29], 1)], "2 clips")


def test_tolerance_requires_the_same_alarm_count():
    tol = tolerances.load()
    ref = {"precision": "fp32", "task": {"alarm_events": 2}}
    same = tolerances.check({"precision": "int8", "task": {"alarm_events": 2}}, ref, tol)
    other = tolerances.check({"precision": "fp32", "task": {"alarm_events": 3}}, ref, tol)
    assert same["status"] == "pass" and "false alarm events" in same["checked"]
    assert other["status"] == "fail" and "false alarm events delta +1" in other["failures"][0]


def test_held_back_footage_is_the_held_back_list():
    from edge.data.real_sources import HELD_BACK
    got = load_held_back(max_frames=5)
    assert got and all(f"video:{f.name}" in HELD_BACK for f in got)
    assert [len(f.frames) for f in got] == [5] * len(got) and got[0].fps > 0
    assert LABELS


def test_an_export_without_rules_gets_the_shipped_ones():
    """A manifest with no ``alarms`` (an older export) is judged by edge/data/alarms.json for its classes."""
    from edge.classify.decision import load_alarm_rules
    e = classifier_engines(window=4, stride=2)
    task = AlarmTask([Footage("a", read_clip(CLIP)[:12], 25.0)], "a")
    rt = task._runtime(e)
    assert rt.decider.rules == load_alarm_rules(None, LABELS, strict=False)
    assert task.run(e).metrics["alarm_windows"] == 5
