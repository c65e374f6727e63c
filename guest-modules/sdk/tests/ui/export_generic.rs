#[hotswap_guest::export]
fn id<T>(x: i32) -> i32 {
    x
}

fn main() {}
