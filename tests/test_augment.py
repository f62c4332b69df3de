"""Data augmentation: exact shifts, seeded random shifts, and fit(..., augment=...)."""
import numpy as np
import pytest

import fastnn
from fastnn.augment import RandomShift, shift_images


def _images(n=6, side=5, seed=0):
    return np.random.default_rng(seed).random((n, side * side)).astype(np.float32)


def test_shift_images_moves_pixels_exactly():
    img = np.arange(1, 17, dtype=np.float64).reshape(1, 16)  # 4 x 4, pixel values 1..16
    down_left = shift_images(img, np.array([[1, -1]])).reshape(4, 4)
    np.testing.assert_array_equal(down_left, [[0, 0, 0, 0], [2, 3, 4, 0], [6, 7, 8, 0], [10, 11, 12, 0]])
    up_right = shift_images(img, np.array([[-2, 1]]), fill=-1).reshape(4, 4)
    np.testing.assert_array_equal(up_right, [[-1, 9, 10, 11], [-1, 13, 14, 15], [-1, -1, -1, -1], [-1, -1, -1, -1]])
    np.testing.assert_array_equal(shift_images(img, np.array([[0, 0]])), img)
    assert np.all(shift_images(img, np.array([[7, 0]])) == 0)  # moved out of the frame


def test_shift_images_each_row_its_own_shift_and_channels():
    X = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 18)  # 2 images of (C=2, 3, 3)
    out = shift_images(X, np.array([[0, 1], [1, 0]]), image_shape=(2, 3, 3)).reshape(2, 2, 3, 3)
    imgs = X.reshape(2, 2, 3, 3)
    np.testing.assert_array_equal(out[0, :, :, 1:], imgs[0, :, :, :-1])  # right by one, both channels
    np.testing.assert_array_equal(out[0, :, :, 0], 0)
    np.testing.assert_array_equal(out[1, :, 1:, :], imgs[1, :, :-1, :])  # down by one
    np.testing.assert_array_equal(out[1, :, 0, :], 0)


def test_random_shift_is_seeded_and_keeps_shape_and_dtype():
    X = _images()
    a = RandomShift(max_shift=1)(X, np.random.default_rng(3))
    b = RandomShift(max_shift=1)(X, np.random.default_rng(3))
    assert a.shape == X.shape and a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, X)
    np.testing.assert_array_equal(RandomShift(max_shift=0)(X, np.random.default_rng(0)), X)
    # every output row is its input row shifted by some (dy, dx) in -1..1
    for x, row in zip(X, a):
        assert any(np.array_equal(shift_images(x[None], np.array([[dy, dx]])), row[None])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def test_random_shift_validation():
    with pytest.raises(ValueError, match="not square images.*image_shape"):
        RandomShift(2).check(10)
    with pytest.raises(ValueError, match="holds 12 values but the rows have 10"):
        RandomShift(1, image_shape=(3, 4)).check(10)
    assert RandomShift(1, image_shape=(3, 32, 32)).check(3072) == (3, 32, 32)
    with pytest.raises(ValueError, match="max_shift must be a non-negative integer"):
        RandomShift(-1)
    with pytest.raises(ValueError, match="max_shift must be"):
        RandomShift(1.5)
    with pytest.raises(ValueError, match="image_shape must be"):
        RandomShift(1, image_shape=(28,))
    with pytest.raises(ValueError, match="out of the frame"):
        RandomShift(5).check(25)
    with pytest.raises(ValueError, match="fill"):
        RandomShift(1, fill=float("nan"))


def test_fit_with_augment_is_seeded_and_differs_from_plain_fit():
    X, y = _images(n=40), np.arange(40) % 3
    kw = dict(epochs=3, batch_size=8, lr=0.1, verbose=0)
    a, b, plain = (fastnn.MLP([25, 8, 3], seed=1) for _ in range(3))
    a.fit(X, y, augment=RandomShift(1), **kw)
    b.fit(X, y, augment=RandomShift(1), **kw)
    plain.fit(X, y, **kw)
    np.testing.assert_array_equal(a.weights[0], b.weights[0])  # the model seed seeds the shifts
    assert not np.allclose(a.weights[0], plain.weights[0])


def test_fit_augments_each_epoch_only_the_training_rows():
    X, y = _images(n=50), np.arange(50) % 2
    seen = []

    def spy(Xe, rng):
        seen.append(Xe.copy())
        return Xe[:, ::-1].copy()  # any same-shaped array will do

    m = fastnn.MLP([25, 4, 2], seed=0)
    m.fit(X, y, epochs=3, validation_split=0.2, augment=spy, verbose=0)
    assert len(seen) == 3 and all(s.shape == (40, 25) for s in seen)  # validation rows excluded


def test_fit_augment_keeps_the_fused_epoch(monkeypatch):
    m = fastnn.MLP([25, 4, 2], seed=0)
    fused = getattr(m._be, "train_epoch", None)
    if fused is None:
        pytest.skip(f"backend {m.backend} has no fused epoch")
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[5].shape)  # X of the epoch
        return fused(*args, **kwargs)

    monkeypatch.setattr(m._be, "train_epoch", counting)
    m.fit(_images(n=20), np.arange(20) % 2, epochs=2, augment=RandomShift(1), verbose=0)
    assert calls == [(20, 25), (20, 25)]


def test_fit_augment_bad_input():
    X, y = _images(n=10), np.arange(10) % 2
    m = fastnn.MLP([25, 4, 2], seed=0)
    with pytest.raises(TypeError, match="augment must be an augmentation"):
        m.fit(X, y, augment=2, verbose=0)
    with pytest.raises(ValueError, match="must return an array of the shape of X"):
        m.fit(X, y, augment=lambda X, rng: X[:5], verbose=0)
    m10 = fastnn.MLP([10, 4, 2], seed=0)
    with pytest.raises(ValueError, match="not square images"):
        m10.fit(np.ones((4, 10)), [0, 1, 0, 1], augment=RandomShift(1), verbose=0)
