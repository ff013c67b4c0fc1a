"""Latent maths: interpolation endpoints and norms, map round trip, grids, attributes, breeding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core.jobs import UserError
from studio.engine.latent import maths as latent


def unit(v):
    return v / np.linalg.norm(v)


def test_interpolation_endpoints_are_exact():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 8, 8)), rng.standard_normal((4, 8, 8))
    for step in (latent.lerp, latent.slerp):
        np.testing.assert_allclose(step(a, b, 0.0), a, atol=1e-10)
        np.testing.assert_allclose(step(a, b, 1.0), b, atol=1e-10)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(0, 1))
def test_slerp_keeps_unit_norm(seed, t):
    rng = np.random.default_rng(seed)
    a, b = unit(rng.standard_normal(64)), unit(rng.standard_normal(64))
    assert np.linalg.norm(latent.slerp(a, b, t)) == pytest.approx(1.0, abs=1e-9)


def test_lerp_shrinks_where_slerp_does_not():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(1024), rng.standard_normal(1024)
    middle_lerp, middle_slerp = latent.lerp(a, b, 0.5), latent.slerp(a, b, 0.5)
    shell = (np.linalg.norm(a) + np.linalg.norm(b)) / 2
    assert np.linalg.norm(middle_lerp) < 0.8 * shell  # the straight line cuts inside the shell
    assert np.linalg.norm(middle_slerp) == pytest.approx(shell, rel=1e-9)


def test_slerp_midpoint_is_symmetric():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(32), rng.standard_normal(32)
    np.testing.assert_allclose(latent.slerp(a, b, 0.5), latent.slerp(b, a, 0.5), atol=1e-10)


def test_interpolate_gives_n_frames():
    a, b = np.zeros(3), np.ones(3)
    frames = latent.interpolate(a, b, 7, "lerp")
    assert len(frames) == 7 and np.allclose(frames[3], 0.5)


def test_loop_walk_passes_through_every_key_point_and_eases():
    points = [np.array([1.0, 0]), np.array([0, 1.0]), np.array([-1.0, 0])]
    frames = latent.loop_walk(points, frames_per_leg=10, mode="lerp")
    assert len(frames) == 30
    for index, point in enumerate(points):
        np.testing.assert_allclose(frames[index * 10], point)
    first_step = np.linalg.norm(frames[1] - frames[0])
    middle_step = np.linalg.norm(frames[5] - frames[4])
    assert first_step < middle_step, "eased: slow near the key points"


def test_map_round_trip_is_exact_on_fitted_data_and_plain_inverse_is_lossy():
    rng = np.random.default_rng(3)
    latents = rng.standard_normal((60, 4, 4, 4)).astype(np.float32)
    latent_map = latent.fit_map(latents)
    for index in (0, 17, 59):
        rebuilt = latent_map.inverse(latent_map.points[index])
        assert np.abs(rebuilt - latents[index]).max() < 1e-4
    plain = latent_map.inverse_plain(latent_map.points[0])
    assert np.abs(plain - latents[0]).max() > 0.1


def test_map_projection_orders_the_main_direction_first():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((200, 1)) * 10 * unit(rng.standard_normal((1, 16)))
    latents = base + 0.1 * rng.standard_normal((200, 16))
    latent_map = latent.fit_map(latents)
    assert latent_map.variance[0] > 50 * latent_map.variance[1]
    assert latent_map.points.shape == (200, 2)


def test_neighbourhood_grid_is_centred():
    grid = latent.neighbourhood_grid(np.zeros(2), np.array([1.0, 0]), np.array([0, 1.0]), 5, 2.0)
    assert len(grid) == 5 and len(grid[0]) == 5
    np.testing.assert_allclose(grid[2][2], [0, 0])
    np.testing.assert_allclose(grid[0][0], [-2, 2])  # top-left: -x, +y


def test_attribute_direction_points_from_without_to_with():
    latents = np.array([[1.0, 0], [1.2, 0], [0, 0], [0.1, 0]])
    direction = latent.attribute_direction(latents, [True, True, False, False])
    assert direction[0] > 1.0 and direction[1] == 0
    with pytest.raises(UserError):
        latent.attribute_direction(latents, [True] * 4)


def test_breeding_is_seeded_and_lies_between_parents():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(128), rng.standard_normal(128)
    kids = latent.breed(a, b, 4, mutation=0.0, seed=9)
    assert all(np.allclose(x, y) for x, y in zip(kids, latent.breed(a, b, 4, 0.0, seed=9), strict=True))
    for kid in kids:  # closer to the parents' arc than to either parent alone
        assert np.linalg.norm(kid - a) < np.linalg.norm(b - a) and np.linalg.norm(kid - b) < np.linalg.norm(b - a)
    mutated = latent.breed(a, b, 4, mutation=0.5, seed=9)
    assert not np.allclose(mutated[0], kids[0])


def test_rank_by_error_puts_the_largest_first():
    assert latent.rank_by_error([0.1, 0.9, 0.3, 0.9]) == [1, 3, 2, 0]
