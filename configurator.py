"""
Command-line overrides for the one @dataclass config of each script: `--key value` or `--key=value`; a
boolean field also takes a bare `--key` (true).

    cfg = parse_args(TrainConfig, sys.argv[1:])   # unknown keys and bad values exit with a clear message;
                                                  # --help prints the script's docstring and the fields
    check(self, [("lr", 0 < self.lr < math.inf, "> 0")])  # in a config's __post_init__: --lr must be > 0, got 0.0
"""
import dataclasses
import inspect
import os
import re
import sys


def _convert(name, text, default):
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int and "e" in text.lower():  # 1e4, but not 2.9e0
            x = float(text)
            if not x.is_integer():
                raise ValueError
            return int(x)
        return text if default is None or kind is str else kind(text)
    except ValueError:
        article = "an" if kind is int else "a"
        raise SystemExit(f"error: --{name} expects {article} {kind.__name__}, got {text!r}") from None


def parse_args(config_cls, argv, **overrides):
    """Build config_cls from its defaults, then `overrides` (presets), then argv."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values = dict(overrides)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            _help(config_cls, values)
        if not arg.startswith("--"):
            raise SystemExit(f"error: unexpected argument {arg!r}; options look like --key value")
        key, eq, text = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key not in fields:
            raise SystemExit(f"error: unknown option --{key}; valid options: "
                             + ", ".join("--" + k for k in fields))
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if not eq:
            if isinstance(default, bool) and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
                text = "true"  # a bare boolean flag: --resume means --resume true
            elif i + 1 >= len(argv):
                raise SystemExit(f"error: --{key} needs a value")
            else:
                text, i = argv[i + 1], i + 1
        values[key] = _convert(key, text, default)
        i += 1
    try:
        return config_cls(**values)
    except ValueError as e:  # a __post_init__ check: say which value is wrong and stop
        raise SystemExit(f"error: {e}") from None


def _help(config_cls, values):
    """Print the script's docstring, then every field with its value (presets applied) and its comment."""
    comments, name = {}, None
    for line in inspect.getsource(config_cls).splitlines():  # the comments live only in the source
        m = re.match(r"\s+(\w+): [^=]*=.*?(?:#\s*(.*))?$", line)
        if m:
            name = m[1]
            comments[name] = m[2] or ""
        elif name and re.match(r"\s+#", line):  # a comment wrapped onto the next line
            comments[name] += " " + line.strip().lstrip("#").strip()
        else:
            name = None
    print((sys.modules[config_cls.__module__].__doc__ or "").strip())
    print("\noptions, as --key value or --key=value (shown with their defaults):")
    for f in dataclasses.fields(config_cls):
        value = values.get(f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory())
        print(f"  --{f.name:<20} {value!r:<18} {comments.get(f.name, '')}".rstrip())
    raise SystemExit(0)


def print_config(cfg, file=None):
    for k, v in dataclasses.asdict(cfg).items():
        print(f"  {k:<22} {v}", file=file or sys.stdout)


def check(cfg, rules):
    """A config's __post_init__ checks: each rule is (key, ok, allowed), and the first one broken is refused as
    `--key must be <allowed>, got <value>`, which parse_args prints as a one-line error."""
    for key, ok, allowed in rules:
        if not ok:
            raise ValueError(f"--{key} must be {allowed}, got {getattr(cfg, key)!r}")


def check_device(device):
    """--device, checked in the scripts' configs: "" (CUDA if there is a GPU, else the CPU), cpu, cuda or
    cuda:N, the devices this code is written and tested for. A typo ("gpu", "CPU") used to fail inside
    torch, after train.py had taken its out_dir."""
    if device not in ("", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"--device must be cpu, cuda or cuda:N (or empty: CUDA if there is a GPU; this code "
                         f"runs on CPUs and CUDA GPUs), got {device!r}")


def file_in_the_way(folder):
    """The file (folder itself or one above it) that would stop os.makedirs(folder), or None. The configs of
    baselines.py, experiments.py and toy.py refuse such an --out_dir up front, not once the model has loaded."""
    folder = os.path.abspath(folder)
    while not os.path.isdir(folder):
        if os.path.lexists(folder):
            return folder
        folder = os.path.dirname(folder)
    return None


def figure_formats():
    """The file types matplotlib writes figures as (png, pdf, svg, ...), less pgf, which needs LaTeX."""
    from matplotlib.backend_bases import FigureCanvasBase
    return sorted(set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"})
