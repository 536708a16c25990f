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

impl MotoServer {
    /// An RDS client of the test's own, to read back what the driver did.
    pub fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        let config = aws_sdk_rds::Config::builder()
            .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
            .region(aws_sdk_rds::config::Region::new(region.to_string()))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_rds::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_rds::Client::from_conf(config)
    }
}

impl MotoServer {
    /// An EKS client of the test's own (to make the cluster node groups join, and to read back).
    pub fn eks(&self, region: &str) -> aws_sdk_eks::Client {
        let config = aws_sdk_eks::Config::builder()
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .region(aws_sdk_eks::config::Region::new(region.to_string()))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_eks::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_eks::Client::from_conf(config)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
