"""etcdreplicas.py: the fixture the replica tests share. One real 3-member
etcd cluster (etcdcluster.py) for a test class; before each test every
member runs and the cluster is healthy, and the test gets a prefix of its
own, so registry replicas started by start_replica (--backend etcd on that
prefix) see only that test's state."""
import uuid

import svctest
from etcdcluster import EtcdCluster
from svctest import Service


class ReplicaTestCase(svctest.ServiceTestCase):
    """A subclass names its prefixes with PREFIX_NAME; REPLICA_ARGS are
    the arguments every replica gets after the store's."""

    PREFIX_NAME = "replicas"
    REPLICA_ARGS = ("--cleanup-interval", "100ms")

    @classmethod
    def setUpClass(cls):
        cls.cluster = EtcdCluster(3).start_all()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop_all()

    def setUp(self):
        super().setUp()
        for i in range(3):
            self.cluster.start(i)  # a no-op for a member that runs
        self.cluster.wait_healthy()
        self.prefix = "/%s-%s/" % (self.PREFIX_NAME, uuid.uuid4().hex[:12])

    def start_replica(self, port=0, extra=()):
        """A registry replica on this test's prefix, stopped at cleanup;
        extra: more command-line arguments."""
        svc = Service()
        self.addCleanup(svc.close)
        self.addCleanup(self.finish_service, svc)
        svc.start("registry", ["--port", str(port), "--bind", "127.0.0.1",
                               "--backend", "etcd", "--etcd-endpoints",
                               self.cluster.endpoints, "--etcd-prefix", self.prefix,
                               *self.REPLICA_ARGS, *extra])
        return svc
