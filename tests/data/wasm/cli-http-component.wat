;; A component importing `wasi:cli/environment@0.2.0` and exporting `wasi:cli/run@0.2.0` and
;; an HTTP handler (`wasi:http/incoming-handler@0.2.0`, its signature simplified to a request
;; handle), with a `producers` section. Built with `wasm-tools parse` (or the `wat` crate).
(component
  (import "wasi:cli/environment@0.2.0" (instance $env
    (export "get-environment" (func (result (list (tuple string string)))))
    (export "get-arguments" (func (result (list string))))))
  (core module $m
    (memory (export "memory") 1 16)
    (func (export "run") (result i32) i32.const 0)
    (func (export "handle") (param i32))
    (@producers
      (language "Rust" "")
      (processed-by "rustc" "1.95.0")
      (processed-by "wit-component" "0.263.0")))
  (core instance $i (instantiate $m))
  (type $run-result (result))
  (func $run (result $run-result) (canon lift (core func $i "run")))
  (func $handle (param "request" u32) (canon lift (core func $i "handle")))
  (instance $run-instance (export "run" (func $run)))
  (instance $handler-instance (export "handle" (func $handle)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance))
  (export "wasi:http/incoming-handler@0.2.0" (instance $handler-instance)))
