-- The original system's seed data (prisma/seed.js at ca783cf, reference §10)
-- in tests/import/original_schema.sql, followed by the awkward rows an
-- import must cope with.  Ids are fixed cuid-like strings so that tests can
-- name rows; the passwords are real bcryptjs hashes (bcryptjs 2.4.3, the
-- original's version, 12 rounds: $2a$; one made by bcryptjs 3: $2b$).
--
-- Seed (§10):
--   service n8n (priced 0), admin@paas.com / Admin123!@#, customer@test.com /
--   Customer123!@#, three ACTIVE worker nodes without heartbeat, the
--   customer's balance 125000 with two PAID top-ups (TOPUP-2024-001,
--   TOPUP-2024-002), an ACTIVE subscription to n8n whose expiresAt
--   (2024-02-22) has long passed, four unified transactions (one PENDING
--   top-up with no top-up behind it) and three balance transactions.
-- Awkward rows:
--   * mismatch@test.com ($2b$ hash, Mismatch123!@#): balance 50000 while its
--     balance transactions add up to 65000; a live PENDING top-up; an ACTIVE
--     WordPress subscription in its first month with its invoice, numbered in
--     the current month (INV-<this month>-462490, the original's
--     numbers being the last 6 digits of a time in ms);
--   * a top-up of the customer stuck PENDING a day past its expiredAt, its
--     unified transaction still PENDING (reference §8 Q15);
--   * worker-bad-memory: totalMemory "64GB", not a Kubernetes quantity;
--   * fraction@test.com (deactivated): balance 10000.50 and a PAID top-up of
--     15000.50;
--   * Customer@Test.com: the customer's e-mail in other case;
--   * nohash@test.com: a password column that is no bcrypt hash;
--   * an invoice numbered in the original's documented example form
--     (INV-2024-002), not INV-YYYYMM-NNNNNN;
--   * a webhook (a table paas does not import).

INSERT INTO "service_catalog" ("id", "name", "displayName", "description", "version", "isActive",
	"cpuRequest", "cpuLimit", "memRequest", "memLimit", "monthlyPrice", "dockerImage", "containerPort",
	"environmentVars", "createdAt", "updatedAt") VALUES
('csvcn8n000000000000000000', 'n8n', 'N8N Workflow Automation',
 'Powerful workflow automation tool with visual editor. Create complex workflows with a simple drag-and-drop interface.',
 'latest', true, '0.25', '1', '512Mi', '1Gi', 0, 'n8nio/n8n:latest', 5678,
 '{"N8N_BASIC_AUTH_ACTIVE": "true", "N8N_BASIC_AUTH_USER": "admin", "N8N_HOST": "0.0.0.0", "N8N_PORT": "5678",
   "N8N_PROTOCOL": "http", "WEBHOOK_URL": "http://localhost:5678/", "GENERIC_TIMEZONE": "Asia/Jakarta"}',
 '2024-01-10 08:00:00.000', '2024-01-10 08:00:00.000'),
('csvcwordpress000000000000', 'wordpress', 'WordPress',
 'The most popular CMS on the web: websites and blogs with thousands of themes and plugins.',
 '6', true, '0.25', '1', '256Mi', '1Gi', 35000, 'wordpress:6-apache', 80, NULL,
 '2024-03-01 08:00:00.000', '2024-03-01 08:00:00.000');

INSERT INTO "users" ("id", "email", "password", "name", "role", "isActive", "createdAt", "updatedAt") VALUES
('cuseradmin000000000000000', 'admin@paas.com',
 '$2a$12$LzowCCGQCPk78qjgm0QRWusPX3NCdH3iMOukbjuX27.bOJ.vxiW2.', 'System Administrator', 'ADMINISTRATOR', true,
 '2024-01-10 08:00:01.000', '2024-01-10 08:00:01.000'),
('cusercustomer000000000000', 'customer@test.com',
 '$2a$12$nFFuYGWv7stXDyhHy1E9OedpmKMvMP2fak.x9zB458n5eGn/v95Fu', 'Test Customer', 'USER', true,
 '2024-01-10 08:00:02.000', '2024-01-10 08:00:02.000'),
('cusermismatch000000000000', 'mismatch@test.com',
 '$2b$10$AIQhGLIJjGLpr1YicizzK.fg3YQVcfpbsnrAdTXn1iu57Gj5OORZe', 'Mismatched Balance', 'USER', true,
 '2024-03-02 09:00:00.000', '2024-03-02 09:00:00.000'),
('cuserfraction000000000000', 'fraction@test.com',
 '$2a$10$IMshvFnBcjHT/uQWYonmvOWW.zvEarTfni.o.6yY50iDEk4/19V.6', 'Fraction Of A Rupiah', 'USER', false,
 '2024-03-03 09:00:00.000', '2024-03-03 09:00:00.000'),
('cuserdupcase0000000000000', 'Customer@Test.com',
 '$2a$10$gx.8oE3CGy9PJUeEa4hwDOQFfw.SwH4XrOSeE.Ta0aFup8NDHepU2', 'Same Mail Other Case', 'USER', true,
 '2024-03-04 09:00:00.000', '2024-03-04 09:00:00.000'),
('cusernohash00000000000000', 'nohash@test.com', 'plain-text-password', 'No Hash', 'USER', true,
 '2024-03-05 09:00:00.000', '2024-03-05 09:00:00.000');

INSERT INTO "worker_nodes" ("id", "name", "hostname", "ipAddress", "architecture", "operatingSystem", "cpuCores",
	"cpuArchitecture", "totalMemory", "totalStorage", "allocatedCPU", "allocatedMemory", "allocatedStorage",
	"maxPods", "currentPods", "status", "isReady", "isSchedulable", "lastHeartbeat", "lastHealthCheck",
	"labels", "taints", "kubeletVersion", "containerRuntime", "kernelVersion", "osImage", "createdAt", "updatedAt")
VALUES
('cnoderyzen3900x0000000000', 'worker-ryzen-3900x', 'ryzen-3900x.cluster.local', '192.168.1.10', 'amd64', 'linux', 24,
 'AMD Ryzen 9 3900X', '64Gi', '1Ti', '0', '0', '0', 110, 0, 'ACTIVE', true, true, NULL, NULL,
 '{"node.kubernetes.io/instance-type": "high-performance", "topology.kubernetes.io/zone": "zone-a", "node-role.kubernetes.io/worker": "true"}',
 '[]', 'v1.28.0', 'containerd://1.7.0', '5.15.0-78-generic', 'Ubuntu 22.04.3 LTS',
 '2024-01-10 08:00:03.000', '2024-01-10 08:00:03.000'),
('cnoderyzen6900hs000000000', 'worker-ryzen-6900hs', 'ryzen-6900hs.cluster.local', '192.168.1.11', 'amd64', 'linux', 16,
 'AMD Ryzen 9 6900HS', '32Gi', '500Gi', '0', '0', '0', 110, 0, 'ACTIVE', true, true, NULL, NULL,
 '{"node.kubernetes.io/instance-type": "standard", "topology.kubernetes.io/zone": "zone-b", "node-role.kubernetes.io/worker": "true"}',
 '[]', 'v1.28.0', 'containerd://1.7.0', '5.15.0-78-generic', 'Ubuntu 22.04.3 LTS',
 '2024-01-10 08:00:04.000', '2024-01-10 08:00:04.000'),
('cnodeinteli70000000000000', 'worker-intel-i7', 'intel-i7.cluster.local', '192.168.1.12', 'amd64', 'linux', 8,
 'Intel Core i7 Gen7', '32Gi', '500Gi', '0', '0', '0', 110, 0, 'ACTIVE', true, true, NULL, NULL,
 '{"node.kubernetes.io/instance-type": "standard", "topology.kubernetes.io/zone": "zone-c", "node-role.kubernetes.io/worker": "true"}',
 '[]', 'v1.28.0', 'containerd://1.7.0', '5.15.0-78-generic', 'Ubuntu 22.04.3 LTS',
 '2024-01-10 08:00:05.000', '2024-01-10 08:00:05.000'),
('cnodebadmem00000000000000', 'worker-bad-memory', 'bad-memory.cluster.local', '192.168.1.13', 'amd64', 'linux', 4,
 'Intel Celeron J4125', '64GB', '250Gi', '0', '0', '0', 30, 0, 'PENDING', false, true, NULL, NULL,
 '{}', '[]', NULL, NULL, NULL, NULL, '2024-03-06 09:00:00.000', '2024-03-06 09:00:00.000');

-- the seed created the customer's balance at 150000 and then set it to 125000
INSERT INTO "user_balances" ("id", "userId", "balance", "currency", "createdAt", "updatedAt") VALUES
('cbalcustomer0000000000000', 'cusercustomer000000000000', 125000.00, 'IDR', '2024-01-10 08:00:06.000', '2024-01-22 09:00:00.000'),
('cbalmismatch0000000000000', 'cusermismatch000000000000', 50000.00, 'IDR', '2024-03-02 09:00:00.000', '2024-03-10 09:00:00.000'),
('cbalfraction0000000000000', 'cuserfraction000000000000', 10000.50, 'IDR', '2024-03-03 09:00:00.000', '2024-03-03 09:10:00.000'),
('cbalnohash000000000000000', 'cusernohash00000000000000', 0, 'IDR', '2024-03-05 09:00:00.000', '2024-03-05 09:00:00.000');

INSERT INTO "topup_transactions" ("id", "userId", "amount", "currency", "status", "orderId", "snapToken", "paymentType",
	"transactionId", "paidAt", "expiredAt", "midtransData", "createdAt", "updatedAt") VALUES
('ctopup1000000000000000000', 'cusercustomer000000000000', 100000.00, 'IDR', 'PAID', 'TOPUP-2024-001', 'snap-token-123',
 'bank_transfer', 'midtrans-txn-001', '2024-01-15 10:30:00.000', '2024-01-16 10:30:00.000',
 '{"transaction_status": "settlement", "payment_type": "bank_transfer", "gross_amount": "100000.00", "bank": "bca"}',
 '2024-01-15 10:25:00.000', '2024-01-15 10:30:00.000'),
('ctopup2000000000000000000', 'cusercustomer000000000000', 50000.00, 'IDR', 'PAID', 'TOPUP-2024-002', 'snap-token-456',
 'credit_card', 'midtrans-txn-002', '2024-01-20 14:15:00.000', '2024-01-21 14:15:00.000',
 '{"transaction_status": "capture", "payment_type": "credit_card", "gross_amount": "50000.00", "masked_card": "481111-1114"}',
 '2024-01-20 14:10:00.000', '2024-01-20 14:15:00.000'),
-- stuck: still PENDING a day after its expiredAt
('ctopupstuck00000000000000', 'cusercustomer000000000000', 75000.00, 'IDR', 'PENDING',
 'TOPUP-CUSERCUS-1753206462490-U5URT4', 'snap-token-stuck', NULL, NULL, NULL, '2025-07-23 17:47:42.490',
 '{"token": "snap-token-stuck", "redirect_url": "https://app.sandbox.midtrans.com/snap/v2/vtweb/snap-token-stuck"}',
 '2025-07-22 17:47:42.490', '2025-07-22 17:47:42.490'),
-- live: pending and within its 24 hours
('ctopuplive000000000000000', 'cusermismatch000000000000', 20000.00, 'IDR', 'PENDING',
 'TOPUP-CUSERMIS-1753300000000-LIVE01', 'snap-token-live', NULL, NULL, NULL,
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' + interval '20 hours'),
 '{"token": "snap-token-live", "redirect_url": "https://app.sandbox.midtrans.com/snap/v2/vtweb/snap-token-live"}',
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '4 hours'),
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '4 hours')),
('ctopupfraction00000000000', 'cuserfraction000000000000', 15000.50, 'IDR', 'PAID', 'TOPUP-2024-003', 'snap-token-789',
 'gopay', NULL, '2024-03-03 09:10:00.000', '2024-03-04 09:05:00.000', NULL,
 '2024-03-03 09:05:00.000', '2024-03-03 09:10:00.000');

INSERT INTO "subscriptions" ("id", "userId", "serviceId", "status", "startDate", "expiresAt", "subdomain",
	"createdAt", "updatedAt") VALUES
('csubn8n000000000000000000', 'cusercustomer000000000000', 'csvcn8n000000000000000000', 'ACTIVE',
 '2024-01-22 09:00:00.000', '2024-02-22 09:00:00.000', 'customer-n8n-001', '2024-01-22 09:00:00.000', '2024-01-22 09:00:00.000'),
('csubwordpress000000000000', 'cusermismatch000000000000', 'csvcwordpress000000000000', 'ACTIVE',
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '10 days'),
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '10 days') + interval '1 month', 'wordpress-cusermis',
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '10 days'),
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '10 days'));

INSERT INTO "service_instances" ("id", "subscriptionId", "podName", "namespace", "status", "internalUrl", "externalUrl",
	"credentials", "cpuAllocated", "memAllocated", "createdAt", "updatedAt") VALUES
('cinstn8n00000000000000000', 'csubn8n000000000000000000', 'n8n-cusercus-7f9c', 'user-cusercustomer', 'RUNNING',
 'http://n8n-cusercus-7f9c.user-cusercustomer.svc.cluster.local:5678', 'https://customer-n8n-001.minispod.local',
 '{"username": "user_5f2a9c1e", "password": "3f9d1c7a2b6e8d40", "createdAt": "2024-01-22T09:01:00.000Z"}',
 '1', '1Gi', '2024-01-22 09:01:00.000', '2024-01-22 09:05:00.000');

INSERT INTO "invoices" ("id", "invoiceNumber", "userId", "type", "amount", "currency", "status", "topUpTransactionId",
	"subscriptionId", "description", "dueDate", "paidAt", "pdfPath", "downloadCount", "createdAt", "updatedAt") VALUES
('cinvtopup1000000000000000', 'INV-202401-100001', 'cusercustomer000000000000', 'TOPUP', 100000.00, 'IDR', 'PAID',
 'ctopup1000000000000000000', NULL, 'Account Top-up', '2024-01-15 10:30:00.000', '2024-01-15 10:30:00.000', NULL, 2,
 '2024-01-15 10:30:00.000', '2024-01-15 10:30:00.000'),
('cinvoldformat000000000000', 'INV-2024-002', 'cusercustomer000000000000', 'TOPUP', 50000.00, 'IDR', 'PAID',
 'ctopup2000000000000000000', NULL, 'Account Top-up', '2024-01-20 14:15:00.000', '2024-01-20 14:15:00.000', NULL, 0,
 '2024-01-20 14:15:00.000', '2024-01-20 14:15:00.000'),
('cinvsubwp0000000000000000', 'INV-' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMM') || '-462490',
 'cusermismatch000000000000', 'SUBSCRIPTION', 35000.00, 'IDR', 'PAID', NULL, 'csubwordpress000000000000',
 'Service Subscription', date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '10 days'),
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '10 days'), NULL, 0,
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '10 days'),
 date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '10 days'));

INSERT INTO "transactions" ("id", "userId", "type", "status", "description", "amount", "currency", "referenceId",
	"referenceType", "paymentGateway", "paymentMethod", "invoiceId", "createdAt", "updatedAt") VALUES
('ctxtopup10000000000000000', 'cusercustomer000000000000', 'TOPUP', 'SUCCESS', 'Top-up via Bank Transfer (BCA)',
 100000, 'IDR', 'ctopup1000000000000000000', 'TOPUP', 'midtrans', 'bank_transfer', 'cinvtopup1000000000000000',
 '2024-01-15 10:30:00.000', '2024-01-15 10:30:00.000'),
('ctxtopup20000000000000000', 'cusercustomer000000000000', 'TOPUP', 'SUCCESS', 'Top-up via Credit Card',
 50000, 'IDR', 'ctopup2000000000000000000', 'TOPUP', 'midtrans', 'credit_card', NULL,
 '2024-01-20 14:15:00.000', '2024-01-20 14:15:00.000'),
('ctxpurchase00000000000000', 'cusercustomer000000000000', 'SERVICE_PURCHASE', 'SUCCESS',
 'N8N Workflow Automation - Monthly Subscription', 25000, 'IDR', 'csubn8n000000000000000000', 'SUBSCRIPTION',
 'balance', 'balance_deduction', NULL, '2024-01-22 09:00:00.000', '2024-01-22 09:00:00.000'),
('ctxpending000000000000000', 'cusercustomer000000000000', 'TOPUP', 'PENDING',
 'Top-up via E-Wallet (GoPay) - Pending Payment', 75000, 'IDR', NULL, 'TOPUP', 'midtrans', 'gopay', NULL,
 '2024-01-25 16:45:00.000', '2024-01-25 16:45:00.000'),
('ctxstuck00000000000000000', 'cusercustomer000000000000', 'TOPUP', 'PENDING', 'Account top-up via payment gateway',
 75000, 'IDR', 'ctopupstuck00000000000000', 'TOP_UP_TRANSACTION', 'MIDTRANS', NULL, NULL,
 '2025-07-22 17:47:42.490', '2025-07-22 17:47:42.490');

INSERT INTO "balance_transactions" ("id", "userId", "type", "amount", "balanceBefore", "balanceAfter", "description",
	"topUpTransactionId", "subscriptionId", "createdAt") VALUES
('cbtcredit1000000000000000', 'cusercustomer000000000000', 'CREDIT', 100000, 0, 100000, 'Top-up via bank_transfer',
 'ctopup1000000000000000000', NULL, '2024-01-15 10:30:00.000'),
('cbtcredit2000000000000000', 'cusercustomer000000000000', 'CREDIT', 50000, 100000, 150000, 'Top-up via credit_card',
 'ctopup2000000000000000000', NULL, '2024-01-20 14:15:00.000'),
('cbtdebit10000000000000000', 'cusercustomer000000000000', 'DEBIT', 25000, 150000, 125000,
 'N8N Workflow Automation subscription', NULL, 'csubn8n000000000000000000', '2024-01-22 09:00:00.000'),
('cbtmmcredit00000000000000', 'cusermismatch000000000000', 'CREDIT', 100000, 0, 100000, 'Top-up via bank_transfer',
 NULL, NULL, '2024-03-02 10:00:00.000'),
('cbtmmdebit000000000000000', 'cusermismatch000000000000', 'DEBIT', 35000, 100000, 65000, 'WordPress subscription',
 NULL, 'csubwordpress000000000000', date_trunc('milliseconds', now() AT TIME ZONE 'UTC' - interval '10 days'));

INSERT INTO "webhooks" ("id", "userId", "url", "events", "secret", "isActive", "createdAt", "updatedAt") VALUES
('cwebhook00000000000000000', 'cusercustomer000000000000', 'https://example.com/hooks/minispod',
 '{subscription.created}', 'whsec-3f9d1c7a', true, '2024-01-22 09:10:00.000', '2024-01-22 09:10:00.000');
