"""A stand-in for pydash (not packaged in Debian) with the few functions
azure-ai-ml 1.4.0 imports: get, omit and objects.set_."""
from . import objects
from .objects import get, omit, set_
