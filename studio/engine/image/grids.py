"""Grids of pictures: plain sheets and the labelled X/Y plot (one image per pair of axis values)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from studio.core.jobs import Artifact, Job, Progress, Result, TaskContext, UserError
from studio.core.recipe import Recipe
from studio.engine.image.generate import IsCancelled, Report, generate_artifacts, load_for_recipe, random_seed
from studio.engine.image.pipelines import ImageBundle


def image_grid(images: Sequence, cols: int, gap: int = 0, background=(0, 0, 0)):
    """Images (same size) in rows of `cols`."""
    from PIL import Image

    if not images:
        raise ValueError("no images for the grid")
    cols = max(1, min(cols, len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), background)
    for i, image in enumerate(images):
        grid.paste(image.convert("RGB"), ((i % cols) * (w + gap), (i // cols) * (h + gap)))
    return grid


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType
        return ImageFont.load_default()


MIN_PLOT_CELL = 128
MAX_PLOT_CELL = 384  # long labels (prompts) widen the cells up to this, then wrap onto LABEL_LINES lines
LABEL_LINES = 3


def _fit_text(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _wrap(draw, text: str, font, width: int, max_lines: int = LABEL_LINES) -> list[str]:
    """The text on at most `max_lines` lines of `width` pixels: broken at spaces, long words broken anywhere,
    the last line ended with "…" when the text doesn't fit."""
    words = str(text).split() or [""]
    lines: list[str] = []
    line = ""
    for word in words:
        candidate = f"{line} {word}" if line else word
        if draw.textlength(candidate, font=font) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while draw.textlength(word, font=font) > width and len(word) > 1:  # a word wider than the cell
            cut = len(word)
            while cut > 1 and draw.textlength(word[:cut], font=font) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    lines.append(line)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [_fit_text(draw, " ".join(lines[max_lines - 1 :]), font, width)]
    return lines


def _cell_factor(images: Sequence, labels: Sequence[str]) -> int:
    """How much to enlarge the pictures: small models to MIN_PLOT_CELL, and further (up to MAX_PLOT_CELL) so
    the longest column label fits on LABEL_LINES lines."""
    from PIL import Image, ImageDraw

    smallest = min(min(im.size) for im in images)
    widest = max(im.width for im in images)
    factor = math.ceil(MIN_PLOT_CELL / smallest) if smallest < MIN_PLOT_CELL else 1  # small models: enlarge, crisp
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    while widest * (factor + 1) <= MAX_PLOT_CELL:
        w, h = widest * factor, max(im.height for im in images) * factor
        font = _font(_font_size(h))
        if all(len(_wrap(probe, str(label), font, w - 8, LABEL_LINES + 1)) <= LABEL_LINES for label in labels):
            break
        factor += 1
    return factor


def _font_size(cell_height: int) -> int:
    return max(12, min(28, cell_height // 9))


def labelled_grid(images: Sequence, cols: int, x_labels: Sequence[str], y_labels: Sequence[str]):
    """A grid with column labels on top and row labels on the left, like A1111's X/Y plot. Labels wrap onto up
    to three lines; long ones (prompts) make the cells bigger first."""
    from PIL import Image, ImageDraw

    # One cell size for all: the largest picture's. When width or height is an axis the pictures differ in size;
    # each keeps its own shape and scale, centred in its cell (squeezing them to the first one's size lied).
    factor = _cell_factor(images, [str(t) for t in x_labels])
    w, h = max(im.width for im in images) * factor, max(im.height for im in images) * factor
    cells = []
    for im in images:
        cell = Image.new("RGB", (w, h), (255, 255, 255))
        big = im.convert("RGB").resize((im.width * factor, im.height * factor), Image.Resampling.NEAREST)
        cell.paste(big, ((w - big.width) // 2, (h - big.height) // 2))
        cells.append(cell)
    body = image_grid(cells, cols, gap=2, background=(255, 255, 255))
    font_size = _font_size(h)
    font = _font(font_size)
    line_height = int(font_size * 1.25)
    probe = ImageDraw.Draw(body)
    longest_y = max((probe.textlength(str(t), font=font) for t in y_labels), default=0)
    left = int(min(longest_y + font_size, max(w, 12 * font_size)))
    column_lines = [_wrap(probe, str(label), font, w - 8) for label in x_labels]
    row_lines = [_wrap(probe, str(label), font, left - 8, max(1, min(LABEL_LINES + 1, h // line_height))) for label in y_labels]
    top = max(len(lines) for lines in column_lines) * line_height + font_size
    sheet = Image.new("RGB", (left + body.width, top + body.height), (255, 255, 255))
    sheet.paste(body, (left, top))
    draw = ImageDraw.Draw(sheet)
    for i, lines in enumerate(column_lines):
        y = top - font_size // 2 - len(lines) * line_height  # the lines sit just above their column
        for line in lines:
            x = left + i * (w + 2) + (w - draw.textlength(line, font=font)) / 2
            draw.text((x, y), line, fill=(0, 0, 0), font=font)
            y += line_height
    for j, lines in enumerate(row_lines):
        y = top + j * (h + 2) + (h - len(lines) * line_height) / 2
        for line in lines:
            draw.text((4, y), line, fill=(0, 0, 0), font=font)
            y += line_height
    return sheet


RECIPE_AXES = ("seed", "prompt", "negative_prompt")  # axes that are Recipe fields, not params


PARAM_AXES = (
    "steps",
    "guidance",
    "guidance_start",
    "variety",
    "scheduler",
    "width",
    "height",
    "strength",
    "variation_seed",
    "variation_strength",
    "clip_skip",
)


XY_AXES = RECIPE_AXES + PARAM_AXES  # what the X/Y plot can vary (the UI lists these)


def _with_axis(recipe: Recipe, name: str, value) -> Recipe:
    from dataclasses import replace

    if name in RECIPE_AXES:
        return replace(recipe, **{name: int(value) if name == "seed" else str(value)})
    return recipe.with_params(**{name: value})


def _axis_label(name: str, value) -> str:
    return f"{name}: {value}"


def xy_plot(
    bundle: ImageBundle,
    base_recipe: Recipe,
    x_param: str,
    x_values: Sequence,
    y_param: str,
    y_values: Sequence,
    report: Report = None,
    cancelled: IsCancelled = None,
):
    """One image per (x, y) pair, laid out as a labelled grid (x across, y down). Returns a PIL image."""
    if not x_values or not y_values:
        raise UserError("an X/Y plot needs at least one value on each axis")
    for axis in (x_param, y_param):
        if axis not in XY_AXES:
            raise UserError(f"an X/Y plot cannot vary {axis!r}; choose from {', '.join(XY_AXES)}")
    cells = len(x_values) * len(y_values)
    base = base_recipe.with_params(batch_count=1)
    if base.seed is None or int(base.seed) < 0:
        from dataclasses import replace

        base = replace(base, seed=random_seed())  # one seed for every cell, so only the axes differ
    images = []
    for j, y_value in enumerate(y_values):
        for i, x_value in enumerate(x_values):
            cell = j * len(x_values) + i

            def cell_report(progress: Progress, cell=cell) -> None:
                if report is not None:
                    report(
                        Progress(
                            cell * progress.total + progress.step,
                            cells * progress.total,
                            progress.preview,
                            f"cell {cell + 1} of {cells}",
                        )
                    )

            recipe = _with_axis(_with_axis(base, x_param, x_value), y_param, y_value)
            images.append(generate_artifacts(bundle, recipe, cell_report, cancelled)[0].payload)
    return labelled_grid(
        images, len(x_values), [_axis_label(x_param, v) for v in x_values], [_axis_label(y_param, v) for v in y_values]
    )


def xy_plot_task(job: Job, ctx: TaskContext) -> Result:
    """Worker entry for an X/Y plot: job.args = {x_param, x_values, y_param, y_values}."""
    if job.recipe is None:
        raise UserError("an X/Y plot needs a base recipe")
    args = job.args
    bundle = load_for_recipe(job.recipe, ctx)
    grid = xy_plot(
        bundle,
        job.recipe,
        args["x_param"],
        list(args["x_values"]),
        args["y_param"],
        list(args["y_values"]),
        ctx.report,
        ctx.cancelled,
    )
    from dataclasses import replace

    recipe = replace(
        job.recipe.with_params(xy_plot={k: args[k] for k in ("x_param", "x_values", "y_param", "y_values")}),
        model=job.recipe.model or bundle.source.ref,
        model_hash=bundle.model_hash,
        device=bundle.device,
        dtype=bundle.dtype,
    )
    return Result(artifacts=[Artifact("image", recipe, grid, info={"fallbacks": list(bundle.fallbacks)})])
