"""Exceptions with messages that name the problem, shared by every layer."""


class DepthNodesError(ValueError):
    """Base class: bad input or configuration that the caller can fix."""


class InputShapeError(DepthNodesError):
    """An array has the wrong shape or dtype."""


class NonFiniteInputError(DepthNodesError):
    """An input holds NaN or inf where finite values are required."""


class EmptyInputError(DepthNodesError):
    """An input holds no usable data (empty scan, no points in view)."""


class OcclusionFilterError(DepthNodesError):
    """A see-through (occlusion) filter parameter is unknown, out of range or of the wrong type."""


class CalibrationError(DepthNodesError):
    """A camera model or calibration file is invalid or incomplete."""


class DataFormatError(DepthNodesError):
    """A file on disk is missing, unreadable or not in the expected format."""


class ConversionError(DepthNodesError):
    """A ROS message cannot be converted (bad encoding, size, layout or fields)."""
