from .layers import *  # noqa
