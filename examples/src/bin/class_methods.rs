//! Methods: the Rust counterparts of instance, static and class methods.
//!
//! A job runs on another thread, so it cannot borrow `&self`: an instance method takes
//! `self: Arc<Self>` (shared) or `self` (moved), a static method has no receiver, and a
//! class method becomes an associated function returning `Self`.

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
struct DataProcessor {
    default_timeout: u32,
}

fn expensive_computation(data: &str, timeout: u32) -> HashMap<String, String> {
    std::thread::sleep(std::time::Duration::from_millis(10));
    HashMap::from([
        ("data".to_owned(), data.to_uppercase()),
        ("timeout".to_owned(), timeout.to_string()),
    ])
}

impl DataProcessor {
    /// Instance method.
    #[aiothreads::threaded]
    fn process(self: Arc<Self>, data: String) -> HashMap<String, String> {
        expensive_computation(&data, self.default_timeout)
    }

    /// Static method.
    #[aiothreads::threaded]
    fn utility_function(value: i32) -> i32 {
        value * 2
    }

    /// Class method: an alternative constructor.
    #[aiothreads::threaded]
    fn from_config(config: HashMap<String, u32>) -> Self {
        DataProcessor {
            default_timeout: config.get("default_timeout").copied().unwrap_or(30),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let processor = Arc::new(DataProcessor {
        default_timeout: 30,
    });

    let result: HashMap<String, String> = processor.clone().process("data".into()).await;
    let utility_result: i32 = DataProcessor::utility_function(10).await;
    let config = HashMap::from([("default_timeout".to_owned(), 60)]);
    let new_processor: DataProcessor = DataProcessor::from_config(config).await;

    println!("{result:?} {utility_result} {new_processor:?}");
    assert_eq!(result["data"], "DATA");
    assert_eq!(utility_result, 20);
    assert_eq!(new_processor.default_timeout, 60);
}
