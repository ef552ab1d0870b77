// Behavioural model of the ECP5 MULT18X18D, only the mode hdl/multiply.py's ecp5_mult18
// instantiates: signed 18 x 18, input registers on CLK0 with clock enable CE0, output register
// on CLK0 with clock enable CE1, no pipeline register, no reset used. Only for the
// testbenches (synthesis uses the real primitive); its parameters are not checked.
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0",
    parameter REG_INPUTA_RST = "RST0", parameter REG_INPUTB_CLK = "NONE",
    parameter REG_INPUTB_CE = "CE0", parameter REG_INPUTB_RST = "RST0",
    parameter REG_INPUTC_CLK = "NONE", parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE", parameter REG_OUTPUT_CE = "CE0",
    parameter REG_OUTPUT_RST = "RST0", parameter CLK0_DIV = "ENABLED",
    parameter GSR = "ENABLED", parameter SOURCEB_MODE = "B_SHIFT",
    parameter RESETMODE = "SYNC"
) (
    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] a_r = 0, b_r = 0;
    reg [35:0] p_r = 0;
    wire [35:0] a_x = SIGNEDA ? {{18{a_r[17]}}, a_r} : {18'b0, a_r};
    wire [35:0] b_x = SIGNEDB ? {{18{b_r[17]}}, b_r} : {18'b0, b_r};
    always @(posedge CLK0) begin
        if (CE0) begin
            a_r <= a;
            b_r <= b;
        end
        if (CE1)
            p_r <= a_x * b_x;
    end
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p_r;
endmodule
