#!/usr/bin/env python3
"""Regenerates golden.json, the Python reference vectors for canonjson.

Run from this directory with python3 (3.11 was used): python3 gen_golden.py
The Go tests only read golden.json; they never run Python.
"""
import json
import math
import random
import struct

random.seed(20240601)


def bits(f):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", f))[0]


named = [
    0.0, -0.0, 0.1, -0.1, 1.0, -1.0, 100.0, 1e16, 1e15, 1e-4, 1e-5, 1e-3,
    123456789.123, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308,
    2.2250738585072014e-308, 1 / 3, 2 / 3, 2.5e-7, 1e22, 1e21, 1e23, 1e100,
    1e-100, 1.5e16, 1.234567890123456e15, 9999999999999998.0, 1e17,
    12345678901234567890.0, 0.3, 0.1 + 0.2, 3.141592653589793, 2.0 ** 53,
    2.0 ** 53 + 2, 2.0 ** 63, 2.0 ** 64, 1.5, 0.5, 0.25, 0.001, 0.00012345,
    0.000012345, 123.456, 1e-7, 4.35, 0.07, 9.5367431640625e-07,
    float(struct.unpack("<f", struct.pack("<f", 0.1))[0]),
    float(struct.unpack("<f", struct.pack("<f", 3.4028234663852886e38))[0]),
]
floats = [{"bits": bits(f), "repr": repr(f)} for f in named]
for _ in range(600):
    f = struct.unpack("<d", struct.pack("<Q", random.getrandbits(64)))[0]
    if math.isfinite(f):
        floats.append({"bits": bits(f), "repr": repr(f)})
for _ in range(300):
    f = float(random.randint(1, 10 ** random.randint(1, 18))) * 10.0 ** random.randint(-25, 25)
    floats.append({"bits": bits(f), "repr": repr(f)})
for e in range(-8, 25):
    for m in (1.0, 1.25, 9.999):
        f = m * 10.0 ** e
        floats.append({"bits": bits(f), "repr": repr(f)})

doc_objects = [
    ("identity_raw", {"name": "raw", "attrs": {}, "deps": []}),
    ("identity_clean", {"name": "clean", "attrs": {"min_len": 20, "lang": "en"}, "deps": ["raw_5f2b8e0c"]}),
    ("identity_train", {"name": "train", "attrs": {"lr": 0.001, "layers": 2, "note": "naïve"},
                        "deps": ["clean_0a1b2c3d", "raw_5f2b8e0c"]}),
    ("scalars", [True, False, None, 0, -1, 1.0, "", "x"]),
    ("huge_ints", [2 ** 64, -(2 ** 100), 2 ** 63 - 1, -(2 ** 63), 10 ** 40, 0]),
    ("float_list", [0.1, 1.0, 1e16, 1e15, 1e-4, 1e-5, 123456789.123, 5e-324,
                    1.7976931348623157e308, -0.0, 1 / 3, 2.5e-7, 1e22, 1e21]),
    ("unicode", ["naïve", "😀", "日本語", "\x00\x01\x1f\x7f", "<>&/", "\"\\\b\f\n\r\t",
                 "\u2028\u2029", "\ufffd\ufeff", "é😀z", "\U0010ffff", "\x80\x9f\xa0\xff"]),
    ("mixed_keys", {"a": 1, "B": 2, "_": 3, "é": 4, "10": 5, "9": 6, "": 7, "~": 8, "😀": 9, "\uffff": 10}),
    ("nested", {"z": {"b": [1, {"y": None, "x": [[], {}]}], "a": {}}, "a": [[[[1.5]]]],
                "m": {"k": {"k": {"k": "deep"}}}}),
    ("empty_obj", {}),
    ("empty_list", []),
    ("string_root", "hello\nworld"),
]
docs = [{"name": n, "input": json.dumps(o, ensure_ascii=False), "want": json.dumps(o, sort_keys=True)}
        for n, o in doc_objects]

# JSON texts whose numbers go through json.loads (ints exact, others float).
number_texts = [
    ("numbers_text", '[-0, 0, 1E5, 1e-400, 1.0, 1.50, 0.1000000000000000055511151231257827, '
                     '123456789012345678901234567890, -0.0, 2.5e-7, 1e16, 17976931348623157e292]'),
]
for n, text in number_texts:
    obj = json.loads(text)
    docs.append({"name": n, "input": text, "want": json.dumps(obj, sort_keys=True)})

# Maps with non-string keys: value i belongs to keys[i].
def keyed(keys):
    return json.dumps({k: i for i, k in enumerate(keys)}, sort_keys=True)

int_keys = [10, 9, -1, 0, 100, -100, 2, 11, 1, 2 ** 62, -(2 ** 62)]
float_keys = [1.5, 0.1, 1e16, -2.0, 0.0, 1e-5, 100.0, 3.0]
bool_keys = [True, False]

golden = {
    "floats": floats,
    "documents": docs,
    "int_keys": {"keys": int_keys, "want": keyed(int_keys)},
    "float_keys": {"keys": float_keys, "want": keyed(float_keys)},
    "bool_keys": {"keys": bool_keys, "want": keyed(bool_keys)},
}
with open("golden.json", "w", encoding="utf-8") as f:
    json.dump(golden, f, ensure_ascii=False, indent=1)
    f.write("\n")
