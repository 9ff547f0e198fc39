"""Checking that a component's exported functions have the WIT world's types, so a
module built against another world is refused when registered, not on its first call.

A type is written out as text (`record{name:string,...}`) and compared with the world's."""

from __future__ import annotations

import wasmtime
from wasmtime.component import Component, FuncType, ListType, OptionType, RecordType, VariantType

from node.wasm.errors import WasmInvalid

_HEADER = "record{name:string,value:string}"
_HEADERS = f"list<{_HEADER}>"
_MODIFY = (
    f"record{{status:option<u16>,headers-set:{_HEADERS},headers-add:{_HEADERS},"
    "headers-remove:list<string>,body-replace:option<list<u8>>}"
)
_ACTION = f"variant{{continue,reject(u16),modify({_MODIFY})}}"
_REQUEST = (
    f"record{{method:string,path:string,query:string,headers:{_HEADERS},"
    "body:list<u8>,request-id:string,now-epoch-ms:u64}"
)
_RESPONSE = f"record{{status:u16,headers:{_HEADERS},body:list<u8>}}"
# function name -> its type as the world declares it
EXPECTED = {
    "on-request": f"func(req:{_REQUEST})->{_ACTION}",
    "on-response": f"func(resp:{_RESPONSE})->{_ACTION}",
}


def describe(ty: object) -> str:
    """A component value type as text, structurally (type names do not matter)."""
    if isinstance(ty, RecordType):
        return "record{" + ",".join(f"{n}:{describe(t)}" for n, t in ty.fields) + "}"
    if isinstance(ty, VariantType):
        cases = (n if t is None else f"{n}({describe(t)})" for n, t in ty.cases)
        return "variant{" + ",".join(cases) + "}"
    if isinstance(ty, ListType):
        return f"list<{describe(ty.element)}>"
    if isinstance(ty, OptionType):
        return f"option<{describe(ty.payload)}>"
    return type(ty).__name__.lower()  # String, U8, U16, U64, ...


def _describe_func(ty: FuncType) -> str:
    params = ",".join(f"{n}:{describe(t)}" for n, t in ty.params)
    return f"func({params})->{describe(ty.result)}"


def check_exports(
    component: Component, engine: wasmtime.Engine, interfaces: dict[str, str]
) -> None:
    """Raise WasmInvalid when an exported interface lacks its function or has other types.
    `interfaces` maps the function name to the export name of its interface."""
    exports = component.type.exports(engine)
    for func, iface in interfaces.items():
        found = exports[iface].ty.exports(engine).get(func)
        if found is None or not isinstance(found.ty, FuncType):
            raise WasmInvalid(f"{iface} does not export the function {func}")
        if _describe_func(found.ty) != EXPECTED[func]:
            raise WasmInvalid(
                f"{iface}.{func} does not have the smg:gateway types: "
                f"it is {_describe_func(found.ty)}, the world says {EXPECTED[func]}"
            )
