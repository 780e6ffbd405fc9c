//! The codec plans travel in between `serve`, the scheduler and the executors:
//! Ballista's (its shuffle nodes, DataFusion's own through datafusion-proto), plus the
//! functions the planner creates per statement instead of registering by name (text
//! input and output in PostgreSQL's formats): those travel with their definition.

use std::sync::Arc;

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

/// Ballista's physical codec, with userql's per-statement functions. (Ballista's adds
/// only plan nodes: aggregate and window functions travel by name as in DataFusion's.)
#[derive(Debug, Default)]
pub struct UserqlCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl UserqlCodec {
    pub fn shared() -> Arc<dyn PhysicalExtensionCodec> {
        Arc::new(UserqlCodec::default())
    }
}

impl PhysicalExtensionCodec for UserqlCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.ballista.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        self.ballista.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        if buf.is_empty() {
            return self.ballista.try_decode_udf(name, buf);
        }
        let definition = std::str::from_utf8(buf).map_err(|_| {
            DataFusionError::Internal(format!("the definition of {name} is not text"))
        })?;
        Ok(Arc::new(crate::engine::udf_from_definition(definition)?))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        match crate::engine::udf_definition(node) {
            Some(definition) => {
                buf.extend_from_slice(definition.as_bytes());
                Ok(())
            }
            None => self.ballista.try_encode_udf(node, buf),
        }
    }
}
