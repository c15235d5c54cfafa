def _path(path):
    if isinstance(path, (list, tuple)):
        return list(path)
    return [p for p in str(path).replace("[", ".").replace("]", "").split(".") if p != ""]


def get(obj, path, default=None):
    cur = obj
    for key in _path(path):
        if isinstance(cur, dict):
            if key not in cur:
                return default
            cur = cur[key]
        elif isinstance(cur, (list, tuple)):
            try:
                cur = cur[int(key)]
            except (ValueError, IndexError):
                return default
        elif hasattr(cur, key):
            cur = getattr(cur, key)
        else:
            return default
    return cur


def set_(obj, path, value):
    keys = _path(path)
    cur = obj
    for key in keys[:-1]:
        if isinstance(cur, dict):
            cur = cur.setdefault(key, {})
        else:
            if not hasattr(cur, key) or getattr(cur, key) is None:
                setattr(cur, key, {})
            cur = getattr(cur, key)
    if isinstance(cur, dict):
        cur[keys[-1]] = value
    else:
        setattr(cur, keys[-1], value)
    return obj


def omit(obj, *paths):
    keys = set()
    for p in paths:
        if isinstance(p, (list, tuple, set)):
            keys.update(p)
        else:
            keys.add(p)
    return {k: v for k, v in dict(obj).items() if k not in keys}
