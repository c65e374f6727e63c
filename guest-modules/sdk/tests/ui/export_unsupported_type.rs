#[hotswap_guest::export]
fn toggle(on: bool) -> i32 {
    on as i32
}

fn main() {}
