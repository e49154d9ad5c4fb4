use lambda_http::{service_fn, Request};
use order_core::catalogue::Catalogue;
use order_core::store::OrderStore;
use order_core::{config, telemetry};
use orders_api::{Api, Workflow, WorkflowConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let aws = config::aws().await;
    let api = Api {
        store: OrderStore::from_config(aws, config::table_name()?),
        workflow: Workflow {
            client: aws_sdk_sfn::Client::new(aws),
            state_machine_arn: config::required("STATE_MACHINE_ARN")?,
            config: WorkflowConfig::from_env()?,
        },
        catalogue: Catalogue::builtin()?,
    };
    let router = &orders_api::router(std::sync::Arc::new(api));
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, lambda_http::Error>(orders_api::serve(router, request).await)
    }))
    .await
}
