;; A test double of an OPA-compiled policy module (OPA Wasm ABI 1.x, see OPA's docs/content/wasm.md), compiled
;; with wabt at test time. It is NOT Rego: it implements just enough of the ABI for the real
;; @open-policy-agent/opa-wasm SDK to load it, set data, evaluate entrypoints and read results — through the
;; ABI 1.2 fast path (`opa_eval`) or the 1.0/1.1 path (`opa_eval_ctx_*` + `eval`), selected by the minor
;; version the test substitutes for __MINOR__.
;;
;; "Values" are not OPA values: a value is a 4-byte length followed by the JSON text, which the double never
;; parses. Results are built by splicing that text into fixed JSON fragments.
;;
;; Entrypoints (what the `result` of the single result-set element is):
;;   0 "blob/policy"  {"allow":true,"deny":<data>,"input":<input>}  (data is the deny set; input echoed verbatim)
;;   1 "data"         <data>                                        (the test picks the decision through data)
;;   2 "undefined"    (empty result set: an undefined decision)
;;   3 "trap"         executes `unreachable` (a wasm trap)
;;   4 "abort"        calls env.opa_abort("test double abort") like OPA's runtime does on internal errors
(module
  (import "env" "memory" (memory 2))
  (import "env" "opa_abort" (func $opa_abort (param i32)))
  (import "env" "opa_println" (func $opa_println (param i32)))
  (import "env" "opa_builtin0" (func $opa_builtin0 (param i32 i32) (result i32)))

  (global $abi_version (export "opa_wasm_abi_version") i32 (i32.const 1))
  (global $abi_minor_version (export "opa_wasm_abi_minor_version") i32 (i32.const __MINOR__))
  (export "memory" (memory 0))

  ;; Bump allocator above the static strings; reset by the host through opa_heap_ptr_set.
  (global $heap (mut i32) (i32.const 65536))
  ;; Write cursor of $emit.
  (global $cursor (mut i32) (i32.const 0))

  (data (i32.const 1024) "{}\00")
  (data (i32.const 1040) "{\22blob/policy\22:0,\22data\22:1,\22undefined\22:2,\22trap\22:3,\22abort\22:4}\00")
  (data (i32.const 1200) "[{\22result\22:{\22allow\22:true,\22deny\22:\00")
  (data (i32.const 1260) ",\22input\22:\00")
  (data (i32.const 1280) "}}]\00")
  (data (i32.const 1300) "[{\22result\22:\00")
  (data (i32.const 1320) "}]\00")
  (data (i32.const 1330) "[]\00")
  (data (i32.const 1340) "null\00")
  (data (i32.const 1360) "test double abort\00")

  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  (func $copy (param $dst i32) (param $src i32) (param $n i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store8 (i32.add (local.get $dst) (local.get $i))
                    (i32.load8_u (i32.add (local.get $src) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  (func $alloc (param $n i32) (result i32)
    (local $p i32)
    (local $end i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (block $enough
      (loop $grow
        (br_if $enough (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then (unreachable)))
        (br $grow)))
    (global.set $heap (local.get $end))
    (local.get $p))

  ;; A value holding the n bytes at src.
  (func $value (param $src i32) (param $n i32) (result i32)
    (local $v i32)
    (local.set $v (call $alloc (i32.add (local.get $n) (i32.const 4))))
    (i32.store (local.get $v) (local.get $n))
    (call $copy (i32.add (local.get $v) (i32.const 4)) (local.get $src) (local.get $n))
    (local.get $v))

  (func $static_value (param $s i32) (result i32)
    (call $value (local.get $s) (call $strlen (local.get $s))))

  (func $emit (param $src i32) (param $n i32)
    (call $copy (global.get $cursor) (local.get $src) (local.get $n))
    (global.set $cursor (i32.add (global.get $cursor) (local.get $n))))

  (func $emit_static (param $s i32)
    (call $emit (local.get $s) (call $strlen (local.get $s))))

  ;; The result set of entrypoint $ep as a value; data and input given as (pointer, length) of JSON text,
  ;; length 0 meaning undefined (spliced in as null).
  (func $result (param $ep i32) (param $dp i32) (param $dn i32) (param $ip i32) (param $in i32) (result i32)
    (local $v i32)
    (local $total i32)
    (if (i32.eqz (local.get $dn)) (then (local.set $dp (i32.const 1340)) (local.set $dn (i32.const 4))))
    (if (i32.eqz (local.get $in)) (then (local.set $ip (i32.const 1340)) (local.set $in (i32.const 4))))
    (if (i32.eq (local.get $ep) (i32.const 0))
      (then
        (local.set $total
          (i32.add (i32.add (i32.add (i32.add (call $strlen (i32.const 1200)) (local.get $dn))
                                     (call $strlen (i32.const 1260))) (local.get $in))
                   (call $strlen (i32.const 1280))))
        (local.set $v (call $alloc (i32.add (local.get $total) (i32.const 4))))
        (i32.store (local.get $v) (local.get $total))
        (global.set $cursor (i32.add (local.get $v) (i32.const 4)))
        (call $emit_static (i32.const 1200))
        (call $emit (local.get $dp) (local.get $dn))
        (call $emit_static (i32.const 1260))
        (call $emit (local.get $ip) (local.get $in))
        (call $emit_static (i32.const 1280))
        (return (local.get $v))))
    (if (i32.eq (local.get $ep) (i32.const 1))
      (then
        (local.set $total
          (i32.add (i32.add (call $strlen (i32.const 1300)) (local.get $dn)) (call $strlen (i32.const 1320))))
        (local.set $v (call $alloc (i32.add (local.get $total) (i32.const 4))))
        (i32.store (local.get $v) (local.get $total))
        (global.set $cursor (i32.add (local.get $v) (i32.const 4)))
        (call $emit_static (i32.const 1300))
        (call $emit (local.get $dp) (local.get $dn))
        (call $emit_static (i32.const 1320))
        (return (local.get $v))))
    (if (i32.eq (local.get $ep) (i32.const 2))
      (then (return (call $static_value (i32.const 1330)))))
    (if (i32.eq (local.get $ep) (i32.const 4))
      (then (call $opa_abort (i32.const 1360))))
    (unreachable))

  ;; --- ABI exports -----------------------------------------------------------------------------------------

  (func (export "opa_malloc") (param $n i32) (result i32) (call $alloc (local.get $n)))
  (func (export "opa_free") (param $p i32))
  (func (export "opa_heap_ptr_get") (result i32) (global.get $heap))
  (func (export "opa_heap_ptr_set") (param $p i32) (global.set $heap (local.get $p)))

  (func $json_parse (export "opa_json_parse") (param $p i32) (param $n i32) (result i32)
    (call $value (local.get $p) (local.get $n)))
  (func (export "opa_value_parse") (param $p i32) (param $n i32) (result i32)
    (call $json_parse (local.get $p) (local.get $n)))

  (func $json_dump (export "opa_json_dump") (param $v i32) (result i32)
    (local $n i32)
    (local $s i32)
    (if (i32.eqz (local.get $v)) (then (return (i32.const 1340))))
    (local.set $n (i32.load (local.get $v)))
    (local.set $s (call $alloc (i32.add (local.get $n) (i32.const 1))))
    (call $copy (local.get $s) (i32.add (local.get $v) (i32.const 4)) (local.get $n))
    (i32.store8 (i32.add (local.get $s) (local.get $n)) (i32.const 0))
    (local.get $s))
  (func (export "opa_value_dump") (param $v i32) (result i32) (call $json_dump (local.get $v)))

  (func (export "builtins") (result i32) (call $static_value (i32.const 1024)))
  (func (export "entrypoints") (result i32) (call $static_value (i32.const 1040)))

  ;; Evaluation context: input value, data value, entrypoint, result value.
  (func (export "opa_eval_ctx_new") (result i32)
    (local $c i32)
    (local.set $c (call $alloc (i32.const 16)))
    (i32.store (local.get $c) (i32.const 0))
    (i32.store offset=4 (local.get $c) (i32.const 0))
    (i32.store offset=8 (local.get $c) (i32.const 0))
    (i32.store offset=12 (local.get $c) (i32.const 0))
    (local.get $c))
  (func (export "opa_eval_ctx_set_input") (param $c i32) (param $v i32) (i32.store (local.get $c) (local.get $v)))
  (func (export "opa_eval_ctx_set_data") (param $c i32) (param $v i32) (i32.store offset=4 (local.get $c) (local.get $v)))
  (func (export "opa_eval_ctx_set_entrypoint") (param $c i32) (param $e i32) (i32.store offset=8 (local.get $c) (local.get $e)))
  (func (export "opa_eval_ctx_get_result") (param $c i32) (result i32) (i32.load offset=12 (local.get $c)))

  (func $len_of (param $v i32) (result i32)
    (if (result i32) (i32.eqz (local.get $v)) (then (i32.const 0)) (else (i32.load (local.get $v)))))

  (func (export "eval") (param $c i32) (result i32)
    (local $input i32)
    (local $data i32)
    (local.set $input (i32.load (local.get $c)))
    (local.set $data (i32.load offset=4 (local.get $c)))
    (i32.store offset=12 (local.get $c)
      (call $result (i32.load offset=8 (local.get $c))
                    (i32.add (local.get $data) (i32.const 4)) (call $len_of (local.get $data))
                    (i32.add (local.get $input) (i32.const 4)) (call $len_of (local.get $input))))
    (i32.const 0))

  ;; ABI 1.2 one-shot evaluation: input is raw JSON text at (input, input_len), result is a JSON string.
  (func (export "opa_eval") (param $reserved i32) (param $ep i32) (param $data i32) (param $input i32)
        (param $input_len i32) (param $heap_ptr i32) (param $format i32) (result i32)
    (global.set $heap (local.get $heap_ptr))
    (call $json_dump
      (call $result (local.get $ep)
                    (i32.add (local.get $data) (i32.const 4)) (call $len_of (local.get $data))
                    (local.get $input) (local.get $input_len))))
)
