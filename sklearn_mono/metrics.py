"""Metrics for operator learning."""

import numpy as np
from sklearn.metrics import make_scorer, r2_score
from sklearn.utils.validation import check_array, check_consistent_length

__all__ = ["relative_l2_error", "relative_l2_scorer"]


def relative_l2_error(y_true, y_pred, *, sample_weight=None):
    """Relative L2 error, ``||y_pred - y_true|| / ||y_true||``, averaged over samples.

    Norms run over all channels and grid points of a sample; on a uniform
    grid this is the resolution-independent relative L2 error of a function.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, ...)
        True outputs, one sample per row; any trailing shape.
    y_pred : array-like of the same shape as ``y_true``
        Predicted outputs.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the samples in the average.

    Returns
    -------
    error : float
        Weighted mean of the per-sample errors (a zero true output's norm
        counts as machine epsilon).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mono.metrics import relative_l2_error
    >>> y = np.array([[3.0, 4.0], [1.0, 0.0]])
    >>> relative_l2_error(y, y * 1.1)
    0.1...
    """
    y_true = check_array(y_true, ensure_2d=False, allow_nd=True, input_name="y_true")
    y_pred = check_array(y_pred, ensure_2d=False, allow_nd=True, input_name="y_pred")
    check_consistent_length(y_true, y_pred, sample_weight)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {y_true.shape} and "
            f"{y_pred.shape}."
        )
    n = y_true.shape[0]
    diff = np.linalg.norm((y_pred - y_true).reshape(n, -1), axis=1)
    size = np.linalg.norm(y_true.reshape(n, -1), axis=1)
    per_sample = diff / np.maximum(size, np.finfo(np.float64).eps)
    return float(np.average(per_sample, weights=sample_weight))


relative_l2_scorer = make_scorer(relative_l2_error, greater_is_better=False)
relative_l2_scorer.__doc__ = """Scorer for GridSearchCV: minus the relative L2 error."""


def _flat_r2_score(y_true, y_pred, sample_weight=None):
    """R² over every output value of a sample (channels and grid points alike),
    weighted by their variance: ``1 - SSE / SST`` over all values."""
    y_true = np.asarray(y_true)
    n = len(y_true)
    return r2_score(
        y_true.reshape(n, -1),
        np.asarray(y_pred).reshape(n, -1),
        sample_weight=sample_weight,
        multioutput="variance_weighted",
    )
