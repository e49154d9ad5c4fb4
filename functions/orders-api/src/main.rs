use lambda_http::{service_fn, Request};
use order_core::catalogue::Catalogue;
use order_core::{activity, config};
use orders_api::{Api, Workflow};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let api = Api {
        store: activity::start().await?,
        workflow: Workflow::from_env(&config::aws().await)?,
        catalogue: Catalogue::builtin()?,
        local_caller_header: Api::local_caller_header_from_env()?,
    };
    let router = &orders_api::router(std::sync::Arc::new(api));
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, lambda_http::Error>(orders_api::serve(router, request).await)
    }))
    .await
}
