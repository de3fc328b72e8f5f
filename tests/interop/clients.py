"""Python clients for Wharf's interop suite (tests/interop/main.rs): oras-py and wasmtime.

    clients.py push-wasm HOST/REPO:TAG FILE            # wasm-to-oci layout, as the article's CLI
    clients.py pull HOST/REPO:TAG OUTDIR                # writes each layer under its title
    clients.py push-referrer HOST/REPO:TAG FILE SUBJECT_MEDIA_TYPE SUBJECT_DIGEST SUBJECT_SIZE
    clients.py run-wasm FILE                            # runs a WASI module, stdout inherited

push-wasm and push-referrer print the manifest digest the registry answered; pull prints the
paths it wrote, one per line. Plain HTTP (insecure=True) and no credentials, unless
WHARF_ORAS_CA names a CA bundle (then HTTPS, verified against it) and WHARF_ORAS_USER /
WHARF_ORAS_PASSWORD give credentials (the token flow).
"""

import os
import sys


def client(target):
    import oras.client

    host = target.split("/", 1)[0]
    ca = os.environ.get("WHARF_ORAS_CA")
    if ca:
        c = oras.client.OrasClient(hostname=host, insecure=False, tls_verify=ca)
    else:
        c = oras.client.OrasClient(hostname=host, insecure=True)
    user = os.environ.get("WHARF_ORAS_USER")
    if user:
        c.auth.set_basic_auth(user, os.environ["WHARF_ORAS_PASSWORD"])
    return c


def push(target, path, media_type, config_media_type, subject=None):
    # oras-py refuses paths outside the working directory: push from the file's own folder.
    folder, name = os.path.split(os.path.abspath(path))
    os.chdir(folder)
    with open("config.json", "wb") as f:
        f.write(b"{}")
    response = client(target).push(
        target=target,
        files=[f"{name}:{media_type}"],
        manifest_config=f"config.json:{config_media_type}",
        subject=subject,
        quiet=True,
    )
    print(response.headers["Docker-Content-Digest"])


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "push-wasm":
        target, path = args
        push(target, path, "application/vnd.wasm.content.layer.v1+wasm", "application/vnd.wasm.config.v1+json")
    elif command == "pull":
        target, outdir = args
        for path in client(target).pull(target=target, outdir=outdir):
            print(path)
    elif command == "push-referrer":
        import oras.oci

        target, path, media_type, digest, size = args
        subject = oras.oci.Subject(mediaType=media_type, digest=digest, size=int(size))
        push(target, path, "application/spdx+json", "application/vnd.example.sbom.v1+json", subject)
    elif command == "run-wasm":
        import wasmtime

        (path,) = args
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        wasi = wasmtime.WasiConfig()
        wasi.inherit_stdout()
        store.set_wasi(wasi)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        instance = linker.instantiate(store, wasmtime.Module.from_file(engine, path))
        instance.exports(store)["_start"](store)
    else:
        sys.exit(f"unknown command {command!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
