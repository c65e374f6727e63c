  ;; greeter 2.0.0. State, schema 2: the count (i64), then the last name greeted (up to 64
  ;; bytes). It reads schema 1 (migrates-from: a swap from 1.0.0) and writes it (migrates-to: a
  ;; rollback to 1.0.0, which knows nothing of names).
  (@custom "hotswap.meta" "abi=1.0\nname=greeter\nversion=2.0.0\nstate-schema=2\nmigrates-from=1\nmigrates-to=1\n")

  (global $count (mut i64) (i64.const 0))
  ;; The last name lives at 1024; this is its length.
  (global $last_len (mut i32) (i32.const 0))
  (data (i32.const 0) "Welcome, ")
  (data (i32.const 16) "!")

  (func (export "hotswap_state_save") (param $schema i32) (result i64)
    (local $ptr i32) (local $len i32)
    (if (i32.eq (local.get $schema) (i32.const 1))
      (then (local.set $len (i32.const 8)))
      (else
        (if (i32.ne (local.get $schema) (i32.const 2)) (then unreachable))
        (local.set $len (i32.add (i32.const 8) (global.get $last_len)))))
    (local.set $ptr (call $buffer (local.get $len)))
    (i64.store (local.get $ptr) (global.get $count))
    (memory.copy (i32.add (local.get $ptr) (i32.const 8)) (i32.const 1024) (i32.sub (local.get $len) (i32.const 8)))
    (call $pack (local.get $ptr) (local.get $len)))

  (func (export "hotswap_state_load") (param $ptr i32) (param $len i32) (param $schema i32) (result i32)
    (if (i32.eq (local.get $schema) (i32.const 1))
      (then
        (if (i32.ne (local.get $len) (i32.const 8)) (then (return (i32.const 1))))
        (global.set $count (i64.load (local.get $ptr)))
        (global.set $last_len (i32.const 0))
        (return (i32.const 0))))
    (if (i32.ne (local.get $schema) (i32.const 2)) (then (return (i32.const 2))))
    (if (i32.or (i32.lt_u (local.get $len) (i32.const 8)) (i32.gt_u (local.get $len) (i32.const 72)))
      (then (return (i32.const 1))))
    (global.set $count (i64.load (local.get $ptr)))
    (global.set $last_len (i32.sub (local.get $len) (i32.const 8)))
    (memory.copy (i32.const 1024) (i32.add (local.get $ptr) (i32.const 8)) (global.get $last_len))
    (i32.const 0))

  ;; greet(name) -> "Welcome, <name>!", and remembers the name (its first 64 bytes).
  (func (export "greet") (param $name i32) (param $len i32) (result i64)
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (global.set $last_len (select (local.get $len) (i32.const 64) (i32.lt_u (local.get $len) (i32.const 64))))
    (memory.copy (i32.const 1024) (local.get $name) (global.get $last_len))
    (call $join (i32.const 0) (i32.const 9) (local.get $name) (local.get $len) (i32.const 16) (i32.const 1)))

  (func (export "count") (result i64) (global.get $count))

  ;; last() -> the last name greeted: new in 2.0.0, so calling it while 1.0.0 runs is
  ;; NOT_IN_VERSION.
  (func (export "last") (param i32 i32) (result i64)
    (call $join (i32.const 1024) (global.get $last_len) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
