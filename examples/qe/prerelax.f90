! Pre-relax a Quantum ESPRESSO pw.x input with e3relax (through the Fortran
! module) and write the pw.x input that starts from the prediction.
!
!   qe_prerelax IN.pwi OUT.pwi [MODEL_DIR] [--fixed-cell]
!
! IN.pwi needs ibrav = 0 with CELL_PARAMETERS (angstrom, bohr or alat) and
! ATOMIC_POSITIONS (angstrom, bohr, alat or crystal). OUT.pwi is IN.pwi with
! the predicted cell and positions, in the input's own units, and
! calculation = 'vc-relax' (or 'relax' with --fixed-cell, which keeps the
! cell); every other line is copied unchanged. MODEL_DIR '' or absent: the
! shipped model. Atoms with if_pos flags (0 = frozen, per Cartesian force
! component, as pw.x reads them) are frozen in the prediction too: an atom
! frozen on all three axes keeps its line unchanged (in a 'relax', and with
! crystal coordinates also in a 'vc-relax', where it keeps its fractional
! coordinates); a partly frozen atom keeps the frozen components.
program qe_prerelax
    use, intrinsic :: iso_c_binding
    use e3relax
    implicit none
    integer, parameter :: max_lines = 10000
    real(c_double), parameter :: bohr = 0.529177210903d0
    character(len=512) :: in_path, out_path, model_dir, arg
    character(len=512), allocatable :: lines(:)
    character(len=32) :: cell_unit, position_unit
    character(len=16), allocatable :: labels(:)
    character(len=128), allocatable :: flags(:)
    integer :: nlines, nat, cell_line, position_line, i, k, unit_number, status
    integer, allocatable :: numbers(:)
    logical :: fixed_cell, any_frozen
    logical, allocatable :: move_mask(:, :)
    real(c_double) :: alat, lattice(3, 3), new_lattice(3, 3), scale
    real(c_double), allocatable :: positions(:, :), new_positions(:, :), fractional(:, :)
    type(e3relax_model) :: model

    if (command_argument_count() < 2) then
        write (0, '(a)') 'usage: qe_prerelax IN.pwi OUT.pwi [MODEL_DIR] [--fixed-cell]'
        stop 2
    end if
    call get_command_argument(1, in_path)
    call get_command_argument(2, out_path)
    model_dir = ''
    fixed_cell = .false.
    do i = 3, command_argument_count()
        call get_command_argument(i, arg)
        if (trim(arg) == '--fixed-cell') then
            fixed_cell = .true.
        else
            model_dir = arg
        end if
    end do

    ! Read the input.
    allocate (lines(max_lines))
    open (newunit=unit_number, file=trim(in_path), status='old', action='read', iostat=status)
    if (status /= 0) call fail('cannot open '//trim(in_path))
    nlines = 0
    do
        read (unit_number, '(a)', iostat=status) arg
        if (status /= 0) exit
        nlines = nlines + 1
        if (nlines > max_lines) call fail('more than 10000 lines')
        lines(nlines) = arg
    end do
    close (unit_number)

    if (integer_value('ibrav', -1) /= 0) call fail('ibrav = 0 with CELL_PARAMETERS is needed')
    nat = integer_value('nat', 0)
    if (nat <= 0) call fail('no nat in &SYSTEM')
    alat = real_value('celldm(1)', 0d0) * bohr
    if (alat == 0d0) alat = real_value('a', 0d0)
    cell_line = card('CELL_PARAMETERS', cell_unit)
    position_line = card('ATOMIC_POSITIONS', position_unit)
    if (cell_line == 0) call fail('no CELL_PARAMETERS card')
    if (position_line == 0) call fail('no ATOMIC_POSITIONS card')
    if (position_line + nat > nlines .or. cell_line + 3 > nlines) call fail('the file ends inside a card')

    ! The cell in Angstrom, columns = lattice vectors (the module's layout).
    scale = unit_scale(cell_unit, alat, 'CELL_PARAMETERS')
    do k = 1, 3
        read (lines(cell_line + k), *, iostat=status) lattice(:, k)
        if (status /= 0) call fail('cannot read CELL_PARAMETERS line: '//trim(lines(cell_line + k)))
    end do
    lattice = lattice * scale

    allocate (labels(nat), flags(nat), numbers(nat), positions(3, nat), new_positions(3, nat), fractional(3, nat))
    allocate (move_mask(3, nat))
    do i = 1, nat
        call split_position(lines(position_line + i), labels(i), positions(:, i), flags(i))
        move_mask(:, i) = if_pos(flags(i), lines(position_line + i))
        numbers(i) = atomic_number(labels(i))
        if (numbers(i) == 0) call fail('unknown element in ATOMIC_POSITIONS label '//trim(labels(i)))
    end do
    if (trim(position_unit) == 'crystal') then
        positions = matmul(lattice, positions)
    else
        positions = positions * unit_scale(position_unit, alat, 'ATOMIC_POSITIONS')
    end if

    ! Predict.
    call e3relax_load(model, trim(model_dir), fixed_cell=fixed_cell)
    any_frozen = .not. all(move_mask)
    if (any_frozen) then
        call e3relax_predict(model, nat, numbers, positions, lattice, new_positions, new_lattice, move_mask=move_mask)
    else
        call e3relax_predict(model, nat, numbers, positions, lattice, new_positions, new_lattice)
    end if
    call e3relax_free(model)

    ! Write the prediction back in the input's units.
    scale = unit_scale(cell_unit, alat, 'CELL_PARAMETERS')
    do k = 1, 3
        write (lines(cell_line + k), '(3f20.12)') new_lattice(:, k) / scale
    end do
    if (trim(position_unit) == 'crystal') then
        fractional = matmul(inverse(new_lattice), new_positions)
    else
        fractional = new_positions / unit_scale(position_unit, alat, 'ATOMIC_POSITIONS')
    end if
    do i = 1, nat
        ! A fully frozen atom whose written coordinates cannot have changed
        ! keeps its line as the user wrote it, to the last digit.
        if (.not. any(move_mask(:, i)) .and. (fixed_cell .or. trim(position_unit) == 'crystal')) cycle
        write (lines(position_line + i), '(2x, a, 3f20.12, 1x, a)') trim(labels(i)), fractional(:, i), trim(flags(i))
    end do
    call set_calculation(merge('relax   ', 'vc-relax', fixed_cell))

    open (newunit=unit_number, file=trim(out_path), status='replace', action='write', iostat=status)
    if (status /= 0) call fail('cannot write '//trim(out_path))
    do i = 1, nlines
        write (unit_number, '(a)') trim(lines(i))
    end do
    close (unit_number)
    write (*, '(a, i0, a)') 'wrote '//trim(out_path)//' (', nat, ' atoms, predicted by e3relax)'

contains

    subroutine fail(message)
        character(len=*), intent(in) :: message
        write (0, '(a)') 'qe_prerelax: '//trim(in_path)//': '//message
        error stop 1
    end subroutine fail

    function lower(text) result(out)
        character(len=*), intent(in) :: text
        character(len=len(text)) :: out
        integer :: j
        out = text
        do j = 1, len(text)
            if (text(j:j) >= 'A' .and. text(j:j) <= 'Z') out(j:j) = achar(iachar(text(j:j)) + 32)
        end do
    end function lower

    !> The text after `key =` in a namelist line (comma or end terminated),
    !> or '' when no line sets key.
    function namelist_value(key) result(value)
        character(len=*), intent(in) :: key
        character(len=64) :: value
        character(len=512) :: line
        integer :: j, at, equals, finish
        value = ''
        do j = 1, nlines
            line = adjustl(lower(lines(j)))
            if (line(1:1) == '!') cycle
            at = index(line, lower(key))
            if (at /= 1 .and. at /= 0) then
                if (line(at - 1:at - 1) /= ' ' .and. line(at - 1:at - 1) /= ',') at = 0
            end if
            if (at == 0) cycle
            equals = index(line(at:), '=')
            if (equals == 0) cycle
            if (len_trim(line(at + len(key):at + equals - 2)) /= 0) cycle  ! a longer key (ntyp vs nat)
            finish = scan(line(at + equals:), ',!')
            if (finish == 0) then
                value = adjustl(line(at + equals:))
            else
                value = adjustl(line(at + equals:at + equals + finish - 2))
            end if
            return
        end do
    end function namelist_value

    integer function integer_value(key, default)
        character(len=*), intent(in) :: key
        integer, intent(in) :: default
        character(len=64) :: text
        integer :: ios
        text = namelist_value(key)
        integer_value = default
        if (len_trim(text) > 0) read (text, *, iostat=ios) integer_value
    end function integer_value

    real(c_double) function real_value(key, default)
        character(len=*), intent(in) :: key
        real(c_double), intent(in) :: default
        character(len=64) :: text
        integer :: ios, d
        text = namelist_value(key)
        real_value = default
        if (len_trim(text) == 0) return
        d = index(text, 'd')  ! Fortran-style exponents (1.0d-8)
        if (d > 0) text(d:d) = 'e'
        read (text, *, iostat=ios) real_value
    end function real_value

    !> The line of a card and its unit ({angstrom}, (bohr), alat, ...).
    integer function card(name, unit)
        character(len=*), intent(in) :: name
        character(len=*), intent(out) :: unit
        character(len=512) :: line
        integer :: j
        card = 0
        unit = ''
        do j = 1, nlines
            line = adjustl(lines(j))
            if (lower(line(1:len(name))) == lower(name)) then
                card = j
                unit = lower(adjustl(line(len(name) + 1:)))
                unit = unit(verify(unit, ' ({'):)
                if (scan(unit, ')}') > 0) unit = unit(:scan(unit, ')}') - 1)
                if (len_trim(unit) == 0) unit = 'alat'
                return
            end if
        end do
    end function card

    !> Angstrom per unit of a card.
    real(c_double) function unit_scale(unit, alat_angstrom, what)
        character(len=*), intent(in) :: unit, what
        real(c_double), intent(in) :: alat_angstrom
        select case (trim(unit))
        case ('angstrom')
            unit_scale = 1d0
        case ('bohr')
            unit_scale = bohr
        case ('alat')
            if (alat_angstrom <= 0d0) call fail(what//' in alat units needs celldm(1) or A')
            unit_scale = alat_angstrom
        case default
            call fail(what//': unit '''//trim(unit)//''' is not supported')
            unit_scale = 1d0
        end select
    end function unit_scale

    !> The move mask of an ATOMIC_POSITIONS line's if_pos flags (none: all
    !> free; otherwise three integers, 0 = frozen).
    function if_pos(rest, line) result(mask)
        character(len=*), intent(in) :: rest, line
        logical :: mask(3)
        integer :: values(3), ios
        mask = .true.
        if (len_trim(rest) == 0) return
        read (rest, *, iostat=ios) values
        if (ios /= 0) call fail('if_pos flags must be three integers: '//trim(line))
        mask = values /= 0
    end function if_pos

    !> Label, three coordinates and any trailing if_pos flags of a line.
    subroutine split_position(line, label, xyz, rest)
        character(len=*), intent(in) :: line
        character(len=*), intent(out) :: label, rest
        real(c_double), intent(out) :: xyz(3)
        character(len=64) :: words(7)
        integer :: ios, j
        words = ''
        read (line, *, iostat=ios) words
        label = words(1)
        do j = 1, 3
            read (words(j + 1), *, iostat=ios) xyz(j)
            if (ios /= 0) call fail('cannot read ATOMIC_POSITIONS line: '//trim(line))
        end do
        rest = trim(words(5))//' '//trim(words(6))//' '//trim(words(7))
    end subroutine split_position

    !> The element of a species label (Si, Si1, Fe_up): its leading
    !> letters, two if they make a symbol, else one.
    integer function atomic_number(label)
        character(len=*), intent(in) :: label
        character(len=*), parameter :: symbols = &
            'H HeLiBeB C N O F NeNaMgAlSiP S ClArK CaScTiV CrMnFeCoNiCuZnGaGeAsSeBrKrRbSrY ZrNbMoTcRuRhPdAgCdInSnSbTeI XeCs'// &
            'BaLaCePrNdPmSmEuGdTbDyHoErTmYbLuHfTaW ReOsIrPtAuHgTlPbBiPoAtRnFrRaAcThPaU NpPuAmCmBkCfEsFmMdNoLrRfDbSgBhHsMtDsRgCn'// &
            'NhFlMcLvTsOg'
        character(len=2) :: two, one
        integer :: z
        two = label(1:min(2, len(label)))
        if (len(label) >= 2) then
            if (.not. (two(2:2) >= 'a' .and. two(2:2) <= 'z')) two(2:2) = ' '
        end if
        one = label(1:1)//' '
        atomic_number = 0
        do z = 1, 118
            if (symbols(2 * z - 1:2 * z) == two) then
                atomic_number = z
                return
            end if
        end do
        do z = 1, 118
            if (symbols(2 * z - 1:2 * z) == one) then
                atomic_number = z
                return
            end if
        end do
    end function atomic_number

    !> Sets calculation = '...' in &CONTROL (adds it when absent).
    subroutine set_calculation(kind)
        character(len=*), intent(in) :: kind
        integer :: j
        do j = 1, nlines
            if (index(lower(lines(j)), 'calculation') > 0) then
                lines(j) = "  calculation = '"//trim(kind)//"'"
                return
            end if
        end do
        do j = 1, nlines
            if (lower(adjustl(lines(j))) == '&control') then
                lines(j + 1:nlines + 1) = lines(j:nlines)
                nlines = nlines + 1
                lines(j + 1) = "  calculation = '"//trim(kind)//"'"
                return
            end if
        end do
    end subroutine set_calculation

    !> Inverse of a 3x3 matrix.
    function inverse(m) result(inv)
        real(c_double), intent(in) :: m(3, 3)
        real(c_double) :: inv(3, 3), det
        inv(1, 1) = m(2, 2) * m(3, 3) - m(2, 3) * m(3, 2)
        inv(1, 2) = m(1, 3) * m(3, 2) - m(1, 2) * m(3, 3)
        inv(1, 3) = m(1, 2) * m(2, 3) - m(1, 3) * m(2, 2)
        inv(2, 1) = m(2, 3) * m(3, 1) - m(2, 1) * m(3, 3)
        inv(2, 2) = m(1, 1) * m(3, 3) - m(1, 3) * m(3, 1)
        inv(2, 3) = m(1, 3) * m(2, 1) - m(1, 1) * m(2, 3)
        inv(3, 1) = m(2, 1) * m(3, 2) - m(2, 2) * m(3, 1)
        inv(3, 2) = m(1, 2) * m(3, 1) - m(1, 1) * m(3, 2)
        inv(3, 3) = m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)
        det = m(1, 1) * inv(1, 1) + m(1, 2) * inv(2, 1) + m(1, 3) * inv(3, 1)
        inv = inv / det
    end function inverse

end program qe_prerelax
