  ;; greeter 1.0.0. State, schema 1: how many greetings so far, an i64 (8 bytes, little-endian).
  (@custom "hotswap.meta" "abi=1.0\nname=greeter\nversion=1.0.0\nstate-schema=1\n")

  (global $count (mut i64) (i64.const 0))
  (data (i32.const 0) "Hello, ")
  (data (i32.const 16) "!")

  (func (export "hotswap_state_save") (param $schema i32) (result i64)
    (local $ptr i32)
    (local.set $ptr (call $buffer (i32.const 8)))
    (i64.store (local.get $ptr) (global.get $count))
    (call $pack (local.get $ptr) (i32.const 8)))

  ;; Statuses: 0 loaded, 1 malformed bytes, 2 a schema this version cannot read.
  (func (export "hotswap_state_load") (param $ptr i32) (param $len i32) (param $schema i32) (result i32)
    (if (i32.ne (local.get $schema) (i32.const 1)) (then (return (i32.const 2))))
    (if (i32.ne (local.get $len) (i32.const 8)) (then (return (i32.const 1))))
    (global.set $count (i64.load (local.get $ptr)))
    (i32.const 0))

  ;; greet(name) -> "Hello, <name>!": the ABI's bytes convention, so the host's
  ;; callString("greet", name) needs no pointers.
  (func (export "greet") (param $name i32) (param $len i32) (result i64)
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (call $join (i32.const 0) (i32.const 7) (local.get $name) (local.get $len) (i32.const 16) (i32.const 1)))

  (func (export "count") (result i64) (global.get $count))
