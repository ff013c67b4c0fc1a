"""The image evaluation's measures on pictures and features made to order: the cyan line per picture, and the
diversity of prompts naming a group apart from those naming one emoji."""

from __future__ import annotations

import numpy as np

from studio.training import eval_image


def test_the_cyan_line_is_counted_per_picture_so_a_few_lined_pictures_show():
    pictures = np.full((10, 64, 64, 3), 255, np.uint8)
    pictures[:2, :, 62, 0] = 225  # two pictures with red dipped at x = 62: cyan, 30 of 255
    tint = eval_image.edge_tint(pictures)
    assert tint["share_visible"] == 0.2
    assert tint["tint_at_column"] == 6.0  # the mean spreads two lines over ten pictures
    assert tint["per_picture_p90"] > eval_image.VISIBLE_TINT
    assert eval_image.edge_tint(np.full((4, 64, 64, 3), 255, np.uint8))["share_visible"] == 0.0


def test_group_prompts_are_class_prompts_and_their_diversity_is_reported_apart():
    named = {p for prompts in eval_image.CLASS_PROMPTS.values() for p in prompts}
    assert set(eval_image.GROUP_PROMPTS) <= named
    rng = np.random.default_rng(0)
    features, labels, prompt_ids = [], [], []
    for k, name in enumerate(eval_image.CLASSES):
        for j, prompt in enumerate(eval_image.CLASS_PROMPTS[name]):
            spread = 1.0 if prompt in eval_image.GROUP_PROMPTS else 0.0  # one-emoji prompts: every seed alike
            features.append(k * 10 + spread * rng.normal(size=(4, 8)))
            labels += [k] * 4
            prompt_ids += [k * 100 + j] * 4
    features = np.concatenate(features)
    real = np.concatenate([k * 10 + rng.normal(size=(6, 8)) for k in range(len(eval_image.CLASSES))])
    real_labels = np.repeat(np.arange(len(eval_image.CLASSES)), 6)
    spread = eval_image.diversity(features, np.array(labels), np.array(prompt_ids), real, real_labels)
    group = eval_image.group_prompt_diversity(spread)
    overall = np.mean([v["ratio"] for v in spread.values()])
    assert 0.7 < group < 1.3  # the group prompts vary as much as the real classes do
    assert overall < group / 2


def test_a_card_shows_an_evaluation_only_of_the_weights_it_scored(tmp_path):
    import json

    from studio.core.catalog import content_hash
    from studio.training.image_export import evaluation_of

    weights = tmp_path / "model"
    (weights / "unet").mkdir(parents=True)
    (weights / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"round five")
    scored = tmp_path / "eval.json"
    scored.write_text(json.dumps({"prompt_adherence": 0.9, "model_hash": content_hash(weights)}))
    assert evaluation_of(scored, weights)["prompt_adherence"] == 0.9
    (weights / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"round six")  # trained on since
    assert evaluation_of(scored, weights) is None
    assert evaluation_of(tmp_path / "missing.json", weights) is None


def test_a_sweep_setting_reads_guidance_from_and_variety_and_the_card_tables_each_row():
    import argparse

    import pytest

    from studio.training.image_export import sweep_lines

    assert eval_image.sweep_setting("6:0.2:0.15") == (6.0, 0.2, 0.15, "")
    assert eval_image.sweep_setting("5") == (5.0, 0.0, 0.0, "")
    assert eval_image.sweep_setting("8:0.2:0.15:euler_a") == (8.0, 0.2, 0.15, "euler_a")
    for bad in ("1:2:3:4", "1:2:3:nosuch", "six", "1:2:3:4:5"):
        with pytest.raises(argparse.ArgumentTypeError):
            eval_image.sweep_setting(bad)
    row = {"guidance": 6.0, "guidance_start": 0.2, "variety": 0.15, "adherence": 0.858, "diversity_ratio": 0.435,
           "diversity_ratio_group_prompts": 0.948}
    assert sweep_lines({"rows": [row]})[-1] == "| model's own | 6 | 0.2 | 0.15 | 0.858 | 0.435 | 0.948 |"
    lines = sweep_lines({"rows": [row | {"sampler": "euler_a"}]})
    assert lines[-1] == "| euler_a | 6 | 0.2 | 0.15 | 0.858 | 0.435 | 0.948 |"
    assert sweep_lines(None) == []


def test_the_sentence_gap_is_resampled_by_sentence_and_pools_every_set_beside_the_newest():
    from studio.training.image_export import gap_line

    classes = np.array([1.0] * 36 + [0.0] * 4)  # 40 class prompts, 90 %
    near = np.array([1.0] * 26 + [0.0] * 4)  # 30 sentences, 86.7 %
    gap = eval_image.sentence_gap(classes, near)
    assert gap["points"] == 3.3 and gap["sentences"] == 30
    low, high = gap["ci95"]
    assert low < 0 < 3.3 < high and high - low > 15  # 30 near-binary sentences: wide, as one set's score is
    wide = eval_image.sentence_gap(np.tile(classes, 7), np.tile(near, 7))  # as many prompts, seven times over
    assert wide["points"] == 3.3 and wide["ci95"][1] - wide["ci95"][0] < (high - low) / 2
    far = {"a": {"prompt_hits": near}, "b": {"prompt_hits": np.array([1.0] * 18 + [0.0] * 12)}}
    gaps = eval_image.sentence_gaps({"prompt_hits": classes}, far)
    assert gaps["typed_sentence_adherence"] == 0.733 and gaps["sentence_gap_pooled"]["sentences"] == 60
    assert gaps["sentence_gap_newest_set"]["set"] == "b" and gaps["sentence_gap_newest_set"]["points"] == 30.0
    line = gap_line(gaps["sentence_gap_pooled"], gaps["sentence_gap_newest_set"])
    assert "by 16.7 points" in line and "over all 60" in line


def test_a_sweep_row_switches_to_the_apps_sampler_and_back_to_the_models_own():
    from types import SimpleNamespace

    from diffusers import DPMSolverMultistepScheduler

    own = DPMSolverMultistepScheduler(prediction_type="v_prediction", timestep_spacing="trailing")
    pipe = SimpleNamespace(scheduler=own)
    assert eval_image.use_sampler(pipe, "euler_a", own) == "euler_a"
    assert type(pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert pipe.scheduler.config.prediction_type == "v_prediction"  # the model's own training settings kept
    assert eval_image.use_sampler(pipe, "", own) == "model's own"
    assert type(pipe.scheduler) is DPMSolverMultistepScheduler and pipe.scheduler.config.timestep_spacing == "trailing"


def test_the_cards_per_class_table_has_a_column_for_every_sentence_set_in_the_order_written():
    from studio.training.eval_sentences import PER_CLASS_KEYS
    from studio.training.image_export import per_class_table

    row = {"real": 0.9, "generated": 1.0, "paraphrases": 0.75, "untouched_sentences": 0.5, "diversity": 0.3}
    blank, header, rule, line = per_class_table({"face": row})
    labels = [cell.strip() for cell in header.strip("|").split("|")]
    assert labels[:4] == ["class", "ceiling (held-out real)", "class prompts", "typed sentences (set A)"]
    assert labels[-2:] == ["untouched sentences (set H)", "diversity / real"] and len(labels) == len(PER_CLASS_KEYS) + 4
    assert rule.count("---") == len(labels)
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[:4] == ["face", "0.9", "1.0", "0.75"] and cells[-2:] == ["0.5", "0.3"]
    assert cells[4] == ""  # a set this evaluation did not score stays empty


def test_the_card_shows_the_two_hand_scores_beside_notos_in_the_text_and_the_sweep_table():
    from studio.training.image_export import evaluation_lines, sweep_lines

    row = {"guidance": 5.0, "guidance_start": 0.0, "variety": 0.0, "adherence": 0.8, "diversity_ratio": 0.3,
           "diversity_ratio_group_prompts": 0.6}
    two = {"adherence": 0.88, "diversity_ratio": 0.45, "diversity_ratio_group_prompts": 0.7}
    lines = sweep_lines({"rows": [row | {"two_hands": two}, row]})
    assert lines[3].endswith("| group prompts' diversity, both hands |") and lines[4].count("---") == 10
    assert lines[5].endswith("| 0.6 | 0.88 | 0.45 | 0.7 |") and lines[6].endswith("| 0.3 | 0.6 |")
    assert all("both hands" not in line for line in sweep_lines({"rows": [row]}))
    evaluation = {"prompt_adherence": 0.8, "per_class": {"face": {"generated": 0.8}},
                  "two_hands": {"ceiling_per_hand": {"noto": 0.9, "emojione": 0.88}, "prompt_adherence": 0.86,
                                "diversity_ratio": 0.41, "per_class": {"face": {"generated": 0.9}}}}
    text = "\n".join(evaluation_lines(evaluation))
    assert "0.9 on Noto's, 0.88 on EmojiOne's" in text and "- diversity_ratio: 0.41" in text
    assert text.index("- prompt_adherence: 0.8") < text.index("Against both hands") < text.index("| face |  | 0.9 |")


def test_the_card_says_which_share_of_the_draws_the_second_hand_took_from_which_step():
    from studio.training.image_export import second_hand_data_lines, training_rounds

    state = {"second_hand_from": 58106, "second_hand_shares": [[58106, 0.5], [60010, 0.75]]}
    line = next(line for line in training_rounds(state) if "round 11" in line)
    assert "(50% from step 58,106, 75% from step 60,010)" in line
    assert "EmojiOne 2.2" in second_hand_data_lines(state)[0] and second_hand_data_lines({}) == []
