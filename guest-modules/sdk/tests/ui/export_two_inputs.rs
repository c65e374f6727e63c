#[hotswap_guest::export]
fn join(a: &str, b: &str) -> String {
    format!("{a}{b}")
}

fn main() {}
