"""Caffe network definitions (.prototxt, protobuf text format): just enough to read and edit them.

The VGGFace2 SE-ResNet-50 models use "Axpy" (a * x + y per channel, from the SENet authors'
Caffe fork), which neither stock Caffe 1.0 nor OpenCV's importer knows. `expand_axpy` rewrites
each into stock layers (Reshape + Scale over axis 0 + Eltwise SUM) with the same result, so one
rewritten definition runs on both backends. Python-2.7 compatible (the Caffe image).
"""
from __future__ import absolute_import, division, print_function

import re

_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|([{}:])|([^\s{}:#"\']+))')


class PrototxtError(Exception):
    pass


def _tokens(text, path):
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise PrototxtError("%s: cannot parse near character %d: %r" % (path, position, text[position:position + 40]))
        position = match.end()
        if match.group(1) is None:
            yield match.group(2) or match.group(3) or match.group(4)


def parse(text, path="<prototxt>"):
    """Text format -> list of (key, value); a value is a scalar token (strings keep their quotes)
    or, for a message, another such list."""
    stack = [[]]
    tokens = list(_tokens(text, path))
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "}":
            if len(stack) == 1:
                raise PrototxtError("%s: unbalanced '}'" % path)
            stack.pop()
            index += 1
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if following == ":" and index + 2 < len(tokens) and tokens[index + 2] != "{":
            stack[-1].append((token, tokens[index + 2]))
            index += 3
        elif following == "{" or (following == ":" and tokens[index + 2] == "{"):
            message = []
            stack[-1].append((token, message))
            stack.append(message)
            index += 2 if following == "{" else 3
        else:
            raise PrototxtError("%s: expected ':' or '{' after %r" % (path, token))
    if len(stack) != 1:
        raise PrototxtError("%s: %d unclosed '{'" % (path, len(stack) - 1))
    return stack[0]


def dump(fields, indent=0):
    lines = []
    for key, value in fields:
        if isinstance(value, list):
            lines.append("%s%s {" % ("  " * indent, key))
            lines.append(dump(value, indent + 1))
            lines.append("%s}" % ("  " * indent))
        else:
            lines.append("%s%s: %s" % ("  " * indent, key, value))
    return "\n".join(line for line in lines if line)


def unquote(token):
    return token[1:-1] if token[:1] in "\"'" else token


def values(fields, key):
    return [unquote(v) if not isinstance(v, list) else v for k, v in fields if k == key]


def layers(net):
    """The layer messages of a net (new-style `layer`; old-style `layers` too)."""
    return [value for key, value in net if key in ("layer", "layers")]


def _message(name, kind, bottoms, tops, extra):
    fields = [("name", '"%s"' % name), ("type", '"%s"' % kind)]
    fields += [("bottom", '"%s"' % b) for b in bottoms] + [("top", '"%s"' % t) for t in tops]
    return fields + extra


def expand_axpy(net):
    """Replace every Axpy layer (bottoms: a [N,C(,1,1)], x, y; top = a * x + y) by stock layers."""
    out = []
    for key, value in net:
        if key != "layer" or values(value, "type") != ["Axpy"]:
            out.append((key, value))
            continue
        name = values(value, "name")[0]
        (scale, x, y), (top,) = values(value, "bottom"), values(value, "top")
        weights, scaled = name + "/axpy_weights", name + "/axpy_scaled"
        out.append(("layer", _message(name + "/axpy_reshape", "Reshape", [scale], [weights],
                                      [("reshape_param", [("shape", [("dim", "0"), ("dim", "0")])])])))
        out.append(("layer", _message(name + "/axpy_scale", "Scale", [x, weights], [scaled],
                                      [("scale_param", [("axis", "0")])])))
        out.append(("layer", _message(name, "Eltwise", [scaled, y], [top],
                                      [("eltwise_param", [("operation", "SUM")])])))
    return out


def producers(net):
    """blob -> name of the last layer writing it (in-place layers such as a Scale after a
    BatchNorm rewrite a blob; its final value is the last writer's output)."""
    found = {}
    for layer in layers(net):
        for top in values(layer, "top"):
            found[top] = values(layer, "name")[0]
    return found


def input_name(net):
    """The net's input blob: a top-level `input:` or the top of its Input layer."""
    names = values(net, "input")
    if names:
        return names[0]
    for layer in layers(net):
        if values(layer, "type") == ["Input"]:
            return values(layer, "top")[0]
    raise PrototxtError("the net declares no input (no 'input:' and no Input layer)")
