"""WebAssembly middleware: SMG-compatible components run through wasmtime.

`runtime` loads, checks and runs one component within hard limits; the WIT world
the components are built against lives in `wit/gateway.wit`."""

from pathlib import Path

# The WIT world (`smg:gateway`, world `smg`) guests are built against; shipped with the package.
WIT_DIR = Path(__file__).parent / "wit"
