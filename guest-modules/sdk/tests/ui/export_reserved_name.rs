#[hotswap_guest::export]
fn hotswap_tick() -> i32 {
    1
}

fn main() {}
