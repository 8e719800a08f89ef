"""The split of real footage by file (edge.data.real_sources): a held-back file is never training data."""
import pytest

from edge.data import actions, real_sources
from edge.data.real_sources import HELD_BACK, TRAIN, VAL, HeldBackError, check_training, pool


def test_held_back_files_are_not_in_the_training_list():
    assert not set(HELD_BACK) & set(TRAIN), set(HELD_BACK) & set(TRAIN)
    assert not set(HELD_BACK) & set(VAL) and not set(VAL) & set(TRAIN)
    assert "video:bikes.mp4" in HELD_BACK            # the demo clip: edge run / make demo run on it
    check_training(TRAIN)                             # the training list passes its own check
    assert set(pool("train")) == set(TRAIN) and set(pool("eval")) == set(VAL) | set(HELD_BACK)


def test_sprite_textures_are_training_photos():
    for name in (actions.PERSON_TEXTURES + actions.PRODUCT_TEXTURES + actions.SHELF_TEXTURES
                 + actions.OBJECT_TEXTURES):
        assert f"photo:{name}" in TRAIN, name


@pytest.mark.parametrize("source", HELD_BACK)
def test_asking_for_a_held_back_file_as_training_data_fails(source):
    with pytest.raises(HeldBackError, match="held-back"):
        check_training([source])
    with pytest.raises(HeldBackError, match="not in the training list"):
        check_training(["video:someone_elses.mp4"])


def test_sources_resolve_and_bad_names_are_one_line_errors():
    assert real_sources.video_path("video:bikes.mp4").is_file()
    assert any(s == "video:bikes.mp4" for s, _ in real_sources.held_back_videos())
    for bad in ("bikes.mp4", "audio:x", "video:"):
        with pytest.raises(ValueError):
            real_sources.kind(bad)
    with pytest.raises(ValueError, match="unknown source pool"):
        pool("holdout")
