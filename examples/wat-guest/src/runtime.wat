  ;; What every version of the greeter shares: its memory, the allocator the host uses, and
  ;; the helpers that hand buffers back. build.mjs puts this inside each version's module.
  ;;
  ;; Memory map: 0..1024 constant strings (data segments), 1024..2048 state a version keeps
  ;; at a fixed place, 2048.. the heap of buffers exchanged with the host.

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 2048))
  (global $live (mut i32) (i32.const 0))

  ;; A bump allocator that starts over once every buffer it gave out has been freed: the host
  ;; frees each buffer right after it has used it, so the heap never stays large.
  (func $alloc (export "hotswap_alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32)
    ;; ABI: for len = 0 any non-zero pointer will do, and it is not counted as live.
    (if (i32.eqz (local.get $len)) (then (return (i32.const 2048))))
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then (return (i32.const 0))))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                                    (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (global.set $live (i32.add (global.get $live) (i32.const 1)))
    (local.get $ptr))

  (func (export "hotswap_free") (param $ptr i32) (param $len i32)
    (if (i32.or (i32.eqz (local.get $len)) (i32.eqz (global.get $live))) (then (return)))
    (global.set $live (i32.sub (global.get $live) (i32.const 1)))
    (if (i32.eqz (global.get $live)) (then (global.set $heap (i32.const 2048)))))

  ;; A buffer for the host, or a trap: the ABI asks a state save that cannot allocate to trap.
  (func $buffer (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (call $alloc (local.get $len)))
    (if (i32.and (i32.eqz (local.get $ptr)) (i32.ne (local.get $len) (i32.const 0))) (then unreachable))
    (local.get $ptr))

  ;; ABI packed buffer: pointer in the high 32 bits, length in the low 32 bits.
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Three pieces of memory joined into a new buffer the host owns, returned packed.
  (func $join (param $a i32) (param $alen i32) (param $b i32) (param $blen i32)
              (param $c i32) (param $clen i32) (result i64)
    (local $out i32) (local $len i32)
    (local.set $len (i32.add (i32.add (local.get $alen) (local.get $blen)) (local.get $clen)))
    (local.set $out (call $buffer (local.get $len)))
    (memory.copy (local.get $out) (local.get $a) (local.get $alen))
    (memory.copy (i32.add (local.get $out) (local.get $alen)) (local.get $b) (local.get $blen))
    (memory.copy (i32.add (i32.add (local.get $out) (local.get $alen)) (local.get $blen))
                 (local.get $c) (local.get $clen))
    (call $pack (local.get $out) (local.get $len)))
