"""What a network costs and what the machine could give: multiply-accumulates counted from an
MXNet symbol, and the FP32 peak of the CPU read from `lscpu` (`invoke bench.embed`).

Only convolutions and fully connected layers are counted (2 FLOP per MAC): batch norm,
activations and additions are a few per output value, under 1% of a face backbone's work.
"""
import json
import re


def _ints(text):
    return tuple(int(v) for v in re.findall(r"-?\d+", text or ""))


def _attrs(node):
    return node.get("attrs") or node.get("attr") or node.get("param") or {}  # MXNet >= 1.0, 0.x, 0.8


def _conv(shape, attrs):
    """(output shape, MACs) of a Convolution on a (C, H, W) input."""
    kernel = _ints(attrs["kernel"])
    stride = _ints(attrs.get("stride")) or (1,) * len(kernel)
    pad = _ints(attrs.get("pad")) or (0,) * len(kernel)
    dilate = _ints(attrs.get("dilate")) or (1,) * len(kernel)
    filters, groups = int(attrs["num_filter"]), int(attrs.get("num_group", 1))
    spatial = tuple((size + 2 * p - d * (k - 1) - 1) // s + 1
                    for size, k, s, p, d in zip(shape[1:], kernel, stride, pad, dilate))
    outputs = filters
    for size in spatial:
        outputs *= size
    macs = outputs * (shape[0] // groups)
    for k in kernel:
        macs *= k
    return (filters,) + spatial, macs


def _pool(shape, attrs):
    if attrs.get("global_pool") in ("True", "true", "1"):
        return (shape[0],) + (1,) * (len(shape) - 1)
    kernel = _ints(attrs["kernel"])
    stride = _ints(attrs.get("stride")) or (1,) * len(kernel)
    pad = _ints(attrs.get("pad")) or (0,) * len(kernel)
    full = attrs.get("pooling_convention") == "full"  # ceil instead of floor
    return (shape[0],) + tuple((size + 2 * p - k + (s - 1 if full else 0)) // s + 1
                               for size, k, s, p in zip(shape[1:], kernel, stride, pad))


def _flat(shape):
    size = 1
    for dim in shape:
        size *= dim
    return size


def mxnet_macs(symbol_json, output, input_shape, data="data"):
    """MACs per image from the data input to node `output` of an MXNet symbol JSON text;
    input_shape is (C, H, W). Raises ValueError for an op on the path it cannot size."""
    nodes = json.loads(symbol_json)["nodes"]
    by_name = dict((node["name"], i) for i, node in enumerate(nodes))
    if output not in by_name:
        raise ValueError("the symbol has no node '%s'" % output)
    needed, todo = set(), [by_name[output]]
    while todo:  # the output's ancestors: a checkpoint also holds layers after it (fc7)
        index = todo.pop()
        if index not in needed:
            needed.add(index)
            todo.extend(source[0] for source in nodes[index]["inputs"])
    shapes, total = {}, 0
    for index in sorted(needed):  # nodes are stored in topological order
        node, attrs = nodes[index], _attrs(nodes[index])
        inputs = [shapes.get(source[0]) for source in node["inputs"]]
        shape = inputs[0] if inputs else None
        if node["op"] == "null":
            shapes[index] = tuple(input_shape) if node["name"] == data else None
            continue
        if shape is None:
            raise ValueError("node '%s' (%s) is not fed by '%s'" % (node["name"], node["op"], data))
        if node["op"] == "Convolution":
            shape, macs = _conv(shape, attrs)
            total += macs
        elif node["op"] == "FullyConnected":
            total += _flat(shape) * int(attrs["num_hidden"])
            shape = (int(attrs["num_hidden"]),)
        elif node["op"] == "Pooling":
            shape = _pool(shape, attrs)
        elif node["op"] in ("Flatten", "flatten"):
            shape = (_flat(shape),)
        elif node["op"] in ("Deconvolution", "Reshape", "reshape", "Concat", "concat", "transpose"):
            raise ValueError("node '%s': no shape rule for op %s" % (node["name"], node["op"]))
        shapes[index] = shape  # any other op keeps its first input's shape (BN, activations, +)
    return total


def _caffe_field(fields, name, default=None):
    found = [value for key, value in fields if key == name]
    return found[0].strip("\"'") if found and not isinstance(found[0], list) else (found[0] if found else default)


def _caffe_attrs(param):
    """A Caffe convolution_param/pooling_param -> the MXNet attribute names _conv/_pool read."""
    def pair(name, default):
        side = _caffe_field(param, name, default)
        return "(%s, %s)" % (_caffe_field(param, name + "_h", side), _caffe_field(param, name + "_w", side))
    return {"kernel": pair("kernel_size", 1), "stride": pair("stride", 1), "pad": pair("pad", 0),
            "num_filter": _caffe_field(param, "num_output", 0), "num_group": _caffe_field(param, "group", 1),
            "pooling_convention": "full",  # Caffe rounds pooled sizes up
            "global_pool": _caffe_field(param, "global_pooling", "false")}


def caffe_macs(net, input_shape):
    """MACs per image of a Caffe network parsed as (key, value) pairs (services/vggface2/
    prototxt.parse), from its input blob of shape (C, H, W) through every layer."""
    shapes, total = {}, 0
    for key, layer in net:
        if key not in ("layer", "layers"):
            continue
        kind = _caffe_field(layer, "type")
        bottoms = [v.strip("\"'") for k, v in layer if k == "bottom"]
        tops = [v.strip("\"'") for k, v in layer if k == "top"]
        if kind in ("Input", "Data", "DummyData"):
            shape = tuple(input_shape)
        elif kind == "Convolution":
            shape, macs = _conv(shapes[bottoms[0]], _caffe_attrs(_caffe_field(layer, "convolution_param", [])))
            total += macs
        elif kind == "InnerProduct":
            outputs = int(_caffe_field(_caffe_field(layer, "inner_product_param", []), "num_output"))
            total += _flat(shapes[bottoms[0]]) * outputs
            shape = (outputs,)
        elif kind == "Pooling":
            shape = _pool(shapes[bottoms[0]], _caffe_attrs(_caffe_field(layer, "pooling_param", [])))
        elif kind in ("Deconvolution", "Reshape", "Concat", "Flatten", "Crop"):
            raise ValueError("layer '%s': no shape rule for type %s" % (_caffe_field(layer, "name"), kind))
        else:  # BN, Scale, activations, Eltwise keep their first input's shape
            shape = shapes[bottoms[0]]
        for top in tops:
            shapes[top] = shape
    return total


def lscpu_fields(text):
    """`lscpu` output -> {field: value}."""
    return dict((key.strip(), value.strip()) for key, value in
                (line.split(":", 1) for line in text.splitlines() if ":" in line))


def flop_per_cycle(fields):
    """FP32 FLOP per cycle per core from the ISA flags: FMA units x lanes x 2 (multiply + add).
    AMD before Zen 5 (family < 26) runs AVX-512 on 256-bit units, so it counts as AVX2 there."""
    flags = set(fields.get("Flags", "").split())
    amd_half_width = fields.get("Vendor ID") == "AuthenticAMD" and int(fields.get("CPU family", "0")) < 26
    if "avx512f" in flags and not amd_half_width:
        return 64, "AVX-512 + FMA: 2 x 16 fp32 x 2"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2 + FMA: 2 x 8 fp32 x 2" + (" (AMD family %s: AVX-512 on 256-bit units)"
                                                   % fields["CPU family"] if "avx512f" in flags else "")
    if "avx" in flags:
        return 16, "AVX: 8 fp32 multiply + 8 add"
    return 8, "SSE: 4 fp32 multiply + 4 add"


def clock_ghz(fields):
    """(GHz, where it came from): the nominal clock in the model name, else lscpu's max MHz, else
    BogoMIPS / 2 (on x86 BogoMIPS is twice the timestamp-counter clock, in VMs too)."""
    named = re.search(r"@\s*([\d.]+)\s*GHz", fields.get("Model name", ""))
    if named:
        return float(named.group(1)), "model name"
    if fields.get("CPU max MHz"):
        return float(fields["CPU max MHz"]) / 1000.0, "CPU max MHz"
    if fields.get("BogoMIPS"):
        return float(fields["BogoMIPS"]) / 2000.0, "BogoMIPS / 2"
    raise ValueError("lscpu gives no clock (no '@ GHz' in the model name, no CPU max MHz, no BogoMIPS)")


def roofline(lscpu_text):
    """The machine's FP32 peak: {cores, ghz, flop_per_cycle, per_core_gflops, gflops, how}."""
    fields = lscpu_fields(lscpu_text)
    cores = int(fields.get("Core(s) per socket", 1)) * int(fields.get("Socket(s)", 1))
    ghz, clock_source = clock_ghz(fields)
    per_cycle, isa = flop_per_cycle(fields)
    per_core = ghz * per_cycle
    return {"cores": cores, "ghz": ghz, "flop_per_cycle": per_cycle, "per_core_gflops": per_core,
            "gflops": cores * per_core, "model": fields.get("Model name", "?"),
            "how": "%d cores x %.3f GHz (%s) x %d FLOP/cycle (%s)" % (cores, ghz, clock_source, per_cycle, isa)}
