//! A moto server (PyPI `moto[server]`, installed by the test command) on a free loopback port:
//! the AWS APIs the AWS driver is tested against. Stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MotoServer {
    pub port: u16,
    child: Child,
}

impl MotoServer {
    pub fn start() -> MotoServer {
        let port = crate::net::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is installed (scripts/test.sh installs moto[server])");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        MotoServer { port, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An S3 client of the test's own, to read back what the driver did (credentials moto
    /// accepts, path-style addressing).
    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(region.to_string()))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

/// A client of the test's own for one service (credentials moto accepts): to set up what the
/// driver works against and to read back what it did.
macro_rules! service_client {
    ($(#[$doc:meta])* $method:ident, $krate:ident) => {
        impl MotoServer {
            $(#[$doc])*
            pub fn $method(&self, region: &str) -> $krate::Client {
                let config = $krate::Config::builder()
                    .behavior_version($krate::config::BehaviorVersion::latest())
                    .region($krate::config::Region::new(region.to_string()))
                    .endpoint_url(self.url())
                    .credentials_provider($krate::config::Credentials::new(
                        "testing", "testing", None, None, "moto",
                    ))
                    .http_client(aws_smithy_http_client::Builder::new().build_http())
                    .build();
                $krate::Client::from_conf(config)
            }
        }
    };
}

service_client!(
    /// An RDS client.
    rds,
    aws_sdk_rds
);
service_client!(
    /// An EKS client (to make the cluster node groups join).
    eks,
    aws_sdk_eks
);
service_client!(
    /// A SageMaker client.
    sagemaker,
    aws_sdk_sagemaker
);

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
