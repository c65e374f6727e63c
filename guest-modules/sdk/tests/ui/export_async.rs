#[hotswap_guest::export]
async fn tick() -> i32 {
    1
}

fn main() {}
