"""TF Serving's JSON encoding of predict requests and responses (its `api_rest.md`).

Two request forms:

- row ("instances"): a list with one entry per example. With one input,
  an entry is the input's value; otherwise (or always, if the client
  likes) an object keyed by input name. Answered with "predictions": one
  entry per example, the output's value, or an object keyed by output name
  when there are several.
- columnar ("inputs"): the input's whole batch, or an object of batches
  keyed by input name. Answered with "outputs": the batch, or an object
  keyed by output name.

Any string (`DT_STRING`) value may be sent as `{"b64": "..."}`; string
outputs whose name ends in `_bytes` come back that way.
"""

import base64
import binascii
import json

import numpy as np

from tfx_transfer.serve.servable import ServingError, rows_of


def parse_request(body, input_specs_of):
    """Reads a predict request body.

    Args:
        body: bytes. The request body.
        input_specs_of: callable. Signature name -> {input name: tf.TensorSpec};
            raises `ServingError` (404) for an unknown signature.

    Returns:
        A tuple (signature_name, form, inputs): form is "instances" or
        "inputs", inputs {input name: NumPy array}, batch-major.

    Raises:
        ServingError: the body is not a request TF Serving would accept.
    """
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise ServingError(f"JSON Parse error: {error}") from error
    if not isinstance(request, dict):
        raise ServingError("JSON Value: request body must be a JSON object.")
    forms = [form for form in ("instances", "inputs") if form in request]
    if len(forms) != 1:
        raise ServingError('JSON Value: request body must hold exactly one of "instances" '
                           'or "inputs", not ' + ("both" if forms else "neither") + ".")
    signature_name = request.get("signature_name") or ""
    if not isinstance(signature_name, str):
        raise ServingError('"signature_name" must be a string.')
    specs = input_specs_of(signature_name)
    form = forms[0]
    values = (_from_instances(request[form], specs) if form == "instances"
              else _from_columns(request[form], specs))
    inputs = {key: _to_array(value, specs[key], key) for key, value in values.items()}
    if form == "instances":
        rows_of(inputs)
    return signature_name, form, inputs


def _is_b64(value):
    return isinstance(value, dict) and set(value) == {"b64"}


def _named(value, specs, where):
    """`value` as {input name: value}, checking the names."""
    if isinstance(value, dict) and not _is_b64(value):
        unknown = sorted(set(value) - set(specs))
        if unknown:
            raise ServingError(f"{where}: unknown input name(s) {unknown}; the signature's "
                               f"inputs are {sorted(specs)}.")
        missing = sorted(set(specs) - set(value))
        if missing:
            raise ServingError(f"{where}: missing input(s) {missing}.")
        return value
    if len(specs) != 1:
        raise ServingError(f"{where}: the signature has inputs {sorted(specs)}; name each "
                           "of them in an object.")
    return {next(iter(specs)): value}


def _from_instances(instances, specs):
    if not isinstance(instances, list) or not instances:
        raise ServingError('"instances" must be a non-empty list.')
    rows = [_named(instance, specs, f"instances[{i}]") for i, instance in enumerate(instances)]
    return {key: [row[key] for row in rows] for key in specs}


def _from_columns(columns, specs):
    return _named(columns, specs, '"inputs"')


def _to_array(value, spec, name):
    """A JSON value as a NumPy array of the input's dtype and a compatible shape."""
    if spec.dtype.name == "string":
        array = np.array(_strings(value, name), dtype=object)
    else:
        try:
            array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
        except (TypeError, ValueError) as error:
            raise ServingError(f"Input {name!r}: not a {spec.dtype.name} tensor: "
                               f"{error}") from error
    if not spec.shape.is_compatible_with(array.shape):
        raise ServingError(f"Input {name!r}: shape {list(array.shape)} does not match the "
                           f"signature's {spec.shape.as_list()} (-1 or None: any size).")
    return array


def _strings(value, name):
    """Nested lists of str / {"b64": ...} as nested lists of bytes."""
    if isinstance(value, list):
        return [_strings(item, name) for item in value]
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError) as error:
            raise ServingError(f"Input {name!r}: unable to base64 decode: {error}") from error
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ServingError(f"Input {name!r}: expected a string or {{\"b64\": ...}}, got "
                       f"{type(value).__name__}.")


def format_response(outputs, form):
    """The response body (a JSON-able dict) for {output name: NumPy array}."""
    values = {key: _to_json(value, key.endswith("_bytes")) for key, value in outputs.items()}
    if form == "inputs":
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    size = len(next(iter(values.values())))
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{key: value[i] for key, value in values.items()}
                            for i in range(size)]}


def _to_json(array, as_b64):
    if array.dtype == object:
        return _decode(array.tolist(), as_b64)
    return array.tolist()


def _decode(value, as_b64):
    if isinstance(value, list):
        return [_decode(item, as_b64) for item in value]
    if as_b64:
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value.decode("utf-8", errors="replace")
