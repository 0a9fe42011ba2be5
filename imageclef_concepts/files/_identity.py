"""What tells a callable parameter, or a user's network, from another: for a checkpoint's
fingerprint (``keras._training_loop.run_fingerprint``).

A function's name does not: two losses from one helper, or two lambdas of one module, share
``module.qualname``. So a user's function is known by its code (bytecode, constants, the names
it uses), its defaults, the values its closure holds and the globals it reads; a
``functools.partial`` by its function, arguments and keywords; a callable object by its class
and attributes; a library's function (installed, importable by its name) by that name; a Keras
object by its class and config; a network by its config (:func:`network_identity`). What none
of these tells apart raises :class:`Unidentifiable`. Keras objects are known by the protocol of
Keras' serialization (``get_config`` and ``from_config``), so that this module, below the
``keras`` subpackage, imports no Keras.
"""

import dis
import functools
import inspect
import json
import re
import sys
import sysconfig
import types

import numpy as np

from ._digests import digest

# Installed code (the standard library, site-packages): a function there is its name.
_LIBRARY_FOLDERS = tuple(sorted({sysconfig.get_paths()[key] for key in
                                 ("stdlib", "platstdlib", "purelib", "platlib")}))

# What a class's namespace holds besides its code: Python's own bookkeeping.
_NOT_CLASS_CODE = ("__dict__", "__weakref__", "__doc__", "_abc_impl", "__slotnames__")


class Unidentifiable(ValueError):
    """A value that :func:`identity` cannot tell from another of its kind."""


def identity_digest(value):
    """A digest of :func:`identity`: what a fingerprint keeps of a callable parameter."""
    return digest(json.dumps(identity(value), sort_keys=True))


def network_identity(network, factory):
    """A digest of a user's network, by its config (the layers, their settings and shapes;
    not the compile settings, which are parameters of their own). A network that has no
    config (a subclassed model's) is known by the ``factory`` that built it and its weights'
    names and shapes; a ``keras.Model`` given without config raises :class:`Unidentifiable`."""
    try:
        config = network.get_config()
        return digest(type(network).__qualname__, json.dumps(config, sort_keys=True))
    except (NotImplementedError, TypeError, ValueError):
        if _is_configured(factory):  # a network given, not a factory
            raise Unidentifiable(f"a {type(factory).__name__} without get_config") from None
        shapes = [[list(weight.shape), str(weight.dtype)] for weight in network.weights]
        return digest(json.dumps([identity(factory), shapes], sort_keys=True))


def identity(value, seen=None):
    """``value`` as JSON-ready values that tell it from any other value of its kind."""
    seen = set() if seen is None else seen
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):  # a NumPy number as the Python one
        return value.item()
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [identity(item, seen) for item in value]]
    if isinstance(value, dict):
        return ["dict", sorted(([identity(key, seen), identity(item, seen)]
                                for key, item in value.items()), key=json.dumps)]
    if isinstance(value, (set, frozenset)):
        return ["set", sorted((identity(item, seen) for item in value), key=json.dumps)]
    if isinstance(value, (bytes, bytearray)):
        return ["bytes", digest(bytes(value))]
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if _is_configured(value):
        return _keras_identity(value, seen)
    if hasattr(value, "__array__") and not callable(value):  # arrays, tensors, variables
        array = np.ascontiguousarray(np.asarray(value))
        if array.dtype.hasobject:  # Python objects: each by its own identity
            return ["array", list(array.shape), identity(array.ravel().tolist(), seen)]
        return ["array", str(array.dtype), list(array.shape), digest(array.view(np.uint8))]
    if id(value) in seen:  # a function that calls itself, an object that holds itself
        return ["again", _name(value)]
    seen.add(id(value))
    return _callable_identity(value, seen)


def _callable_identity(value, seen):
    if isinstance(value, np.ufunc):
        return ["ufunc", value.__name__]
    if isinstance(value, functools.partial):
        return ["partial", identity(value.func, seen), identity(value.args, seen),
                identity(value.keywords, seen)]
    if isinstance(value, types.MethodType):
        return ["method", identity(value.__func__, seen), identity(value.__self__, seen)]
    if _named_by_library(value):
        return ["named", _name(value)]
    if isinstance(value, types.FunctionType):
        return ["function", _name(value), _code_identity(value.__code__, seen, value.__doc__),
                identity(value.__defaults__, seen), identity(value.__kwdefaults__, seen),
                [identity(_cell_value(cell), seen) for cell in value.__closure__ or ()],
                identity(_globals_read(value), seen)]
    if isinstance(value, type):
        return ["class", _name(value), [identity(base, seen) for base in value.__bases__],
                identity({key: item for key, item in vars(value).items()
                          if key not in _NOT_CLASS_CODE}, seen)]
    if isinstance(value, (staticmethod, classmethod, property)):
        return [type(value).__name__, identity(value.__func__ if not isinstance(
            value, property) else value.fget, seen)]
    if isinstance(getattr(value, "python_function", None), types.FunctionType):
        return ["tf.function", identity(value.python_function, seen)]  # its locks aside
    if hasattr(value, "__dict__") and not inspect.isbuiltin(value):
        return ["object", identity(type(value), seen), identity(vars(value), seen)]
    raise Unidentifiable(f"a {type(value).__name__}")


def _keras_identity(value, seen):
    """A Keras object by its config; a user's class by its code too, refused when its
    ``__init__`` takes an argument its config does not return (Keras' contract, needed only
    to save: ``W(1.0)`` and ``W(50.0)`` were one); the functions it wraps by their code (a
    ``MeanMetricWrapper``'s config names its function only)."""
    kind = type(value)
    try:
        config = value.get_config()
        text = json.dumps(_default_name(kind, config), sort_keys=True, default=_unidentifiable)
    except (NotImplementedError, TypeError, OSError) as error:  # OSError: a lambda's source
        raise Unidentifiable(f"a {kind.__name__} without a config") from error
    # what its config names only: functions and methods it wraps, a user's object it holds
    # (a schedule in an optimizer), by their code
    wrapped = {key: item for key, item in vars(value).items()
               if isinstance(item, (types.FunctionType, functools.partial, types.MethodType))
               or (_is_configured(item) and not _named_by_library(type(item)))}
    if _named_by_library(kind):
        return ["keras", _name(kind), text, identity(wrapped, seen)]
    missing = [name for name in _own_init_arguments(kind) if name not in config]
    if missing:
        raise Unidentifiable(f"a {kind.__name__} whose get_config does not return "
                             f"{', '.join(missing)}")
    return ["keras", identity(kind, seen), text, identity(wrapped, seen)]


def _own_init_arguments(kind):
    """The named arguments of the ``__init__`` a user's class defines (none when it keeps
    the library's, whose config the library wrote)."""
    for owner in kind.__mro__:
        if _named_by_library(owner):
            return []
        if "__init__" in vars(owner):
            parameters = inspect.signature(owner.__init__).parameters.values()
            return [parameter.name for parameter in parameters if parameter.name != "self"
                    and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)]
    return []


def _default_name(kind, config):
    """``config`` with a name Keras made unique in the process (``adam_1`` for a second
    ``Adam()``) given as the first one's: made again, it is the same object. Such a name is
    the default, or the class's name in snake case, and a number."""
    name = config.get("name") if isinstance(config, dict) else None
    if not isinstance(name, str):
        return config
    base = re.sub(r"_\d+$", "", name)
    default = inspect.signature(kind.__init__).parameters.get("name")
    default = default.default if default is not None else None
    made = (base == default if isinstance(default, str)
            else base.replace("_", "") == kind.__name__.lower().replace("_", ""))
    return {**config, "name": base} if made else config


def _is_configured(value):
    """Whether ``value`` is an object of Keras' serialization protocol (a loss, optimizer,
    metric, layer, model, initializer, regularizer or schedule): known by its config."""
    kind = type(value)
    return not isinstance(value, type) and callable(getattr(kind, "get_config", None)) \
        and callable(getattr(kind, "from_config", None))


def _named_by_library(value):
    """Whether ``value`` is installed code importable by its name (that name tells it)."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return False
    found = sys.modules.get(module)
    code = getattr(value, "__code__", None)
    file = code.co_filename if code is not None else getattr(found, "__file__", None)
    if file is not None and not file.startswith(_LIBRARY_FOLDERS):
        return False  # the user's code: it may change between runs under the same name
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is value


def _code_identity(code, seen, doc=None):
    constants = [_code_identity(constant, seen) if isinstance(constant, types.CodeType)
                 else identity(constant, seen) for constant in code.co_consts]
    if doc is not None and code.co_consts and code.co_consts[0] == doc:
        constants[0] = None  # a docstring: where a function without one holds None
    return [digest(code.co_code), constants, list(code.co_names), list(code.co_varnames)]


def _globals_read(function):
    """The globals ``function`` (and the functions defined in it) read, by name; a user's
    module by the attributes the function reads of it (``config.WEIGHT``: a module is
    otherwise its name)."""
    chains, codes = {}, [function.__code__]  # each global: the attribute chains read of it
    while codes:
        code = codes.pop()
        chain = None
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                chain = [instruction.argval]
                chains.setdefault(instruction.argval, set())
            elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and chain:
                chain.append(instruction.argval)
                chains[chain[0]].add(tuple(chain[1:]))
            else:
                chain = None
        codes += [constant for constant in code.co_consts if isinstance(constant, types.CodeType)]
    return {name: _module_read(function.__globals__[name], chains[name])
            for name in sorted(chains) if name in function.__globals__}  # in order: every run


def _module_read(value, chains):
    """A user's module as the values the attribute ``chains`` (``("sub", "WEIGHT")``) read
    of it reach (its own modules alike; each step a chain shorter, so modules importing
    each other end)."""
    file = getattr(value, "__file__", None)
    if not isinstance(value, types.ModuleType) or file is None or \
            file.startswith(_LIBRARY_FOLDERS):  # installed or built in: its name tells it
        return value
    read = {}
    for first in sorted({chain[0] for chain in chains if chain}):
        if hasattr(value, first):
            rest = {chain[1:] for chain in chains if chain and chain[0] == first}
            read[first] = _module_read(getattr(value, first), rest)
    return ["module", value.__name__, read]


def _cell_value(cell):
    try:
        return cell.cell_contents
    except ValueError:  # a cell not filled yet
        return ["empty cell"]


def _name(value):
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"


def _unidentifiable(value):
    raise Unidentifiable(f"a {type(value).__name__}")
